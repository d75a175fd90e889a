package MpnsTest;

# Small test harness in the nginx-tests style: one object per test file
# owns a temp dir, an nginx instance loading the module and optionally the
# MPNS simulator (util/mpns-simulator).  See t/00_harness.t for usage.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

our $ROOT = abs_path(dirname(__FILE__) . '/../..');

my @objects;                    # weak refs, for the END block

# MpnsTest->new(%opts): fresh temp dir under t/tmp/, module and binary
# from TEST_NGINX_MODULE / TEST_NGINX_BINARY; a missing module bails out.
sub new {
    my ($class, %opts) = @_;

    my $module = $ENV{TEST_NGINX_MODULE}
                 // "$ROOT/build/ngx_http_mpns_module.so";
    $module = File::Spec->rel2abs($module);

    BAIL_OUT("module $module not found: run \"make\" first") if !-f $module;

    make_path("$ROOT/t/tmp");

    # PR_SET_CHILD_SUBREAPER: the daemonized master becomes our child, so
    # it is reaped here and not left a zombie where pid 1 does not reap
    my $prctl = eval { package main; require 'syscall.ph'; SYS_prctl() };
    syscall($prctl, 36, 1, 0, 0, 0) if $prctl;

    my $self = bless {
        opts => \%opts,
        dir => tempdir('mpns-XXXXXX', DIR => "$ROOT/t/tmp",
                       CLEANUP => !$ENV{TEST_NGINX_LEAVE}),
        module => $module,
        binary => $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx',
        valgrind => $ENV{TEST_NGINX_VALGRIND} ? 1 : 0,
        ports => {},
        owner => $$,
    }, $class;

    push @objects, $self;
    weaken($objects[-1]);

    return $self;
}

# $t->testdir: the temp dir (absolute).
sub testdir { $_[0]{dir} }

# $t->timeout_factor: 10 under valgrind, else 1; scales every wait.
sub timeout_factor { $_[0]{valgrind} ? 10 : 1 }

# $t->port($name): a free TCP port on 127.0.0.1, stable per name.
sub port {
    my ($self, $name) = @_;

    return $self->{ports}{$name} if exists $self->{ports}{$name};

    my %used = map { $_ => 1 } values %{$self->{ports}};

    for (1 .. 100) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp',
                                      Listen => 1)
            or die "cannot bind 127.0.0.1:0: $!";
        my $port = $s->sockport;
        close $s;

        next if $used{$port};
        return $self->{ports}{$name} = $port;
    }

    die "no free port for \"$name\"";
}

# $t->sim_start(second => 1?): runs util/mpns-simulator (or
# $ENV{MPNS_SIMULATOR}) on port('sim') (and port('sim2')), waits until it
# accepts connections, then resets it.
sub sim_start {
    my ($self, %opts) = @_;

    my @cmd = ($ENV{MPNS_SIMULATOR} // "$ROOT/util/mpns-simulator",
               '--quiet', '--listen', '127.0.0.1:' . $self->port('sim'));
    push @cmd, '--listen', '127.0.0.1:' . $self->port('sim2')
        if $opts{second};

    $self->{sim_pid} = $self->_spawn("$self->{dir}/sim.log", @cmd);

    for my $name ('sim', $opts{second} ? 'sim2' : ()) {
        next if $self->_wait_port($self->port($name), 10, $self->{sim_pid});
        die "simulator did not start on port " . $self->port($name) . ":\n"
            . _slurp("$self->{dir}/sim.log");
    }

    # forget the readiness probes
    $self->sim_reset;

    return $self;
}

# $t->sim_port: the simulator's (first) port.
sub sim_port { $_[0]->port('sim') }

# $t->sim_url($path): "http://127.0.0.1:PORT$path" for the simulator.
sub sim_url {
    my ($self, $path) = @_;
    return 'http://127.0.0.1:' . $self->sim_port . ($path // '');
}

# $t->sim_reset: forgets recorded requests and scripts.
sub sim_reset { $_[0]->_sim('POST', '/_sim/reset') }

# $t->sim_stats: { accepted, open, requests }.
sub sim_stats { $_[0]->_sim('GET', '/_sim/stats') }

# $t->sim_script($path, [ {...}, ... ]): queues responses for $path.
sub sim_script {
    my ($self, $path, $responses) = @_;
    return $self->_sim('POST', '/_sim/script',
                       { path => $path, responses => $responses });
}

# $t->sim_requests: recorded requests, each with "body" (raw bytes from
# body_b64) and "hdr" (lower-cased name => value) added.
sub sim_requests {
    my ($self) = @_;

    my $list = $self->_sim('GET', '/_sim/requests');

    for my $r (@$list) {
        $r->{body} = decode_base64($r->{body_b64} // '');
        $r->{hdr} = { map { lc($_->[0]) => $_->[1] } @{$r->{headers}} };
    }

    return $list;
}

sub _sim {
    my ($self, $method, $path, $data) = @_;

    my @body = defined $data
        ? (body => JSON::PP->new->utf8->canonical->encode($data),
           headers => ['Content-Type' => 'application/json'])
        : ();

    my $r = $self->http($method, $path, port => $self->sim_port, @body);

    die "simulator $method $path: " . ($r->{error} // $r->{raw}) . "\n"
        if ($r->{status} // 0) !~ /^2/ || !defined $r->{json};

    return $r->{json};
}

# $t->write_conf($text): expands placeholders, writes nginx.conf.
sub write_conf {
    my ($self, $text) = @_;

    $self->{http_wait} = $text =~ /%%PORT%%/;
    _spurt("$self->{dir}/nginx.conf",
           $self->_expand($text, "$self->{dir}/error.log"));

    return $self;
}

sub _expand {
    my ($self, $text, $log) = @_;

    my $d = $self->{dir};

    my $g = "load_module $self->{module};\npid $d/nginx.pid;\n"
            . "error_log $log debug;\n";
    $g .= $self->{valgrind} ? "daemon off;\n" : "daemon on;\n";
    $g .= "master_process on;\n";
    $g .= "worker_processes 1;\n" if $text !~ /^\s*worker_processes\b/m;

    # as root, workers would run as nobody and could not enter the 0700
    # temp dir
    $g .= "user root;\n" if $> == 0 && $text !~ /^\s*user\b/m;

    my $h = "access_log $d/access.log;\n"
            . join('', map { "${_}_temp_path $d/${_}_temp;\n" }
                           qw(client_body proxy fastcgi uwsgi scgi));

    $text =~ s/%%TEST_GLOBALS%%/$g/g;
    $text =~ s/%%TEST_GLOBALS_HTTP%%/$h/g;
    $text =~ s/%%PORT%%/$self->port('http')/ge;
    $text =~ s/%%PORT_(\w+)%%/$self->port(lc $1)/ge;
    $text =~ s/%%SIM_PORT%%/$self->port('sim')/ge;
    $text =~ s/%%SIM2_PORT%%/$self->port('sim2')/ge;
    $text =~ s/%%TESTDIR%%/$d/g;

    return $text;
}

sub _nginx_args {
    my ($self, $conf, $log) = @_;
    return ($self->{binary}, '-p', "$self->{dir}/", '-c', $conf, '-e', $log);
}

# $t->run: starts nginx; waits for port('http') if the conf used %%PORT%%,
# else for the pid file; dies with the error log on failure.
sub run {
    my ($self) = @_;

    my $d = $self->{dir};
    my @cmd = $self->_nginx_args("$d/nginx.conf", "$d/error.log");
    my $limit = 10;

    unlink "$d/nginx.pid";

    if ($self->{valgrind}) {
        unshift @cmd, 'valgrind', '-q', '--trace-children=yes',
            '--child-silent-after-fork=no', '--leak-check=full',
            '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
            '--num-callers=30', '--keep-debuginfo=yes',
            "--suppressions=$ROOT/t/valgrind.supp",
            "--log-file=$d/vg.%p.log";
        $self->{master} = $self->_spawn("$d/nginx.stderr", @cmd);

    } else {
        my $pid = $self->_spawn("$d/nginx.stderr", @cmd);
        waitpid($pid, 0);
        die "nginx failed to start (exit " . ($? >> 8) . "):\n"
            . _slurp("$d/nginx.stderr") . _slurp("$d/error.log") if $?;

        $self->_wait(sub { -s "$d/nginx.pid" }, $limit)
            or die "nginx wrote no pid file:\n" . _slurp("$d/error.log");
        ($self->{master}) = _slurp("$d/nginx.pid") =~ /(\d+)/;
    }

    my $ok = $self->{http_wait}
        ? $self->_wait_port($self->port('http'), $limit, $self->{master})
        : $self->_wait(sub { -s "$d/nginx.pid" }, $limit);

    die "nginx did not start:\n" . _slurp("$d/error.log") if !$ok;

    return $self;
}

# $t->stop: QUIT to the master, waits up to 30 s, then TERM, then KILL.
sub stop {
    my ($self) = @_;

    my $pid = delete $self->{master} or return $self;

    for my $sig (qw(QUIT TERM KILL)) {
        kill $sig, $pid;
        return $self if $self->_wait(sub { !_alive($pid) },
                                     $sig eq 'QUIT' ? 30 : 5);
        diag("nginx $pid did not exit on $sig");
    }

    return $self;
}

# $t->reload(wait_old => 1): HUP; waits for a new worker and (unless
# wait_old => 0) up to 10 s for the old workers to exit.
sub reload {
    my ($self, %opts) = @_;

    my %old = map { $_ => 1 } $self->worker_pids;

    my $master = $self->{master} or die "nginx is not running";
    kill 'HUP', $master or die "cannot signal nginx $master: $!";

    $self->_wait(sub { grep { !$old{$_} } $self->worker_pids }, 10)
        or die "no new worker after reload:\n" . $self->error_log;

    $self->_wait(sub { !grep { _alive($_) } keys %old }, 10)
        if $opts{wait_old} // 1;

    return $self;
}

# $t->worker_pids: pids of the master's children except cache processes.
sub worker_pids {
    my ($self) = @_;

    my $master = $self->{master} or return ();
    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = _slurp($stat);
        my ($pid, $state, $ppid) = $s =~ /^(\d+) \(.*\) (\S) (\d+)/s or next;
        next if $ppid != $master || $state eq 'Z';
        next if _slurp("/proc/$pid/cmdline") =~ /cache (manager|loader)/;
        push @pids, $pid;
    }

    return @pids;
}

# $t->nginx_test($text): "nginx -t" on the expanded text in a separate
# file and log; returns ($exit_code, $stdout_stderr_and_log).
sub nginx_test {
    my ($self, $text) = @_;

    my $d = $self->{dir};
    my $n = ++$self->{conf_n};

    _spurt("$d/t-$n.conf", $self->_expand($text, "$d/t-error.log"));

    my @cmd = $self->_nginx_args("$d/t-$n.conf", "$d/t-error.log");
    splice @cmd, 1, 0, '-t';

    waitpid($self->_spawn("$d/t-$n.out", @cmd), 0);

    return ($? >> 8, _slurp("$d/t-$n.out") . _slurp("$d/t-error.log"));
}

# $t->http_start($method, $uri, %opts): connects and writes the request;
# returns the socket.  opts: headers => [name => value, ...], body, port.
sub http_start {
    my ($self, $method, $uri, %opts) = @_;

    my $port = $opts{port} // $self->port('http');
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Proto => 'tcp')
        or die "cannot connect to 127.0.0.1:$port: $!";
    binmode $s;

    my @h = @{$opts{headers} // []};
    my %has;
    for (my $i = 0; $i < @h; $i += 2) {
        $has{lc $h[$i]} = 1;
    }

    my $req = "$method $uri HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" if !$has{host};
    $req .= "Connection: close\r\n" if !$has{connection};
    $req .= "Content-Length: " . length($opts{body}) . "\r\n"
        if defined $opts{body} && !$has{'content-length'};

    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }

    $req .= "\r\n" . ($opts{body} // '');

    while (length $req) {
        my $n = $s->syswrite($req) // die "write: $!";
        substr($req, 0, $n, '');
    }

    return $s;
}

# $t->http($method, $uri, %opts): one request/response (see http_start;
# plus timeout => 10).  Returns { status, headers, header_list, body,
# json, raw }, and "error" (status undef) on timeout.
sub http {
    my ($self, $method, $uri, %opts) = @_;

    my $s = $self->http_start($method, $uri, %opts);
    my $sel = IO::Select->new($s);
    my $end = time + ($opts{timeout} // 10) * $self->timeout_factor;
    my ($raw, $error) = ('');

    while (1) {
        my $left = $end - time;
        if ($left <= 0 || !$sel->can_read($left)) {
            $error = 'timeout';
            last;
        }

        my $n = $s->sysread($raw, 65536, length $raw);
        if (!defined $n) {
            $error = "read: $!";
            last;
        }

        last if $n == 0;
    }

    close $s;

    return _parse_response($raw, $error);
}

# $t->http_get($uri, %opts): GET shortcut.
sub http_get {
    my ($self, $uri, %opts) = @_;
    return $self->http('GET', $uri, %opts);
}

# $t->post_json($uri, $data_or_string, %opts): POST application/json.
sub post_json {
    my ($self, $uri, $data, %opts) = @_;

    my $body = ref $data ? JSON::PP->new->utf8->canonical->encode($data)
                         : $data;

    return $self->http('POST', $uri, %opts, body => $body,
                       headers => ['Content-Type' => 'application/json',
                                   @{$opts{headers} // []}]);
}

sub _parse_response {
    my ($raw, $error) = @_;

    my $r = { status => undef, headers => {}, header_list => [],
              body => '', json => undef, raw => $raw, error => $error };

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return $r if !defined $body;

    my ($status, @lines) = split /\r\n/, $head;
    ($r->{status}) = $status =~ m{^HTTP/\d\.\d (\d{3})} or return $r;

    for my $line (@lines) {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{$r->{header_list}}, [$name, $value];
        $r->{headers}{lc $name} = $value;
    }

    if (($r->{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $size = hex $1;
            last if $size == 0;
            $out .= substr($body, 0, $size, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }

    $r->{body} = $body;

    if (($r->{headers}{'content-type'} // '') =~ m{^application/json}i) {
        $r->{json} = eval { JSON::PP->new->utf8->decode($body) };
    }

    return $r;
}

# $t->error_log: the text of error.log.
sub error_log { _slurp("$_[0]{dir}/error.log") }

# $t->error_log_lines($level): error.log lines containing "[$level]".
sub error_log_lines {
    my ($self, $level) = @_;
    return grep { index($_, "[$level]") >= 0 } split /\n/, $self->error_log;
}

# $t->done: stops nginx and the simulator, then tests "no alerts" in
# error.log and, under valgrind, "no valgrind errors".  Call it before
# done_testing; it runs from END otherwise.
sub done {
    my ($self, $quiet) = @_;

    return if $self->{done}++;

    $self->_cleanup;

    my @bad = grep { /\[(alert|emerg|crit)\]|Sanitizer|segfault/
                     || /exited on signal/ } split /\n/, $self->error_log;

    _check($quiet, !@bad, 'no alerts', @bad);

    return if !$self->{valgrind};

    my @vg;

    # with -q a clean log is empty: any report but a warning is an error
    for my $log (glob "$self->{dir}/vg.*.log") {
        my $text = _slurp($log);
        push @vg, "$log:\n$text"
            if $text =~ /ERROR SUMMARY: [1-9]/
               || $text =~ /[1-9][\d,]* bytes in [\d,]+ blocks are definitely/
               || grep { /^==\d+== \S/ && !/^==\d+== warning:/i }
                       split /\n/, $text;
    }

    _check($quiet, !@vg, 'no valgrind errors', @vg);
}

# In END with a plan already declared a passing test would break it, so
# only failures are reported there.
sub _check {
    my ($quiet, $ok, $name, @why) = @_;

    return if $quiet && $ok;

    local $Test::Builder::Level = $Test::Builder::Level + 2;
    ok($ok, $name) or diag(join "\n", @why);
}

sub _cleanup {
    my ($self) = @_;

    return if $$ != $self->{owner};

    $self->stop;

    if (my $pid = delete $self->{sim_pid}) {
        kill 'TERM', $pid;
        $self->_wait(sub { !_alive($pid) }, 5) or kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

sub DESTROY {
    my ($self) = @_;

    return if $$ != $self->{owner} || $self->{done};
    $self->done(eval { defined Test::More->builder->has_plan } // 1);
}

END {
    for my $t (grep { defined } @objects) {
        next if $$ != $t->{owner} || $t->{done};
        $t->done(defined Test::More->builder->has_plan);
    }
}

# Runs @cmd in the background with stdout and stderr in $out.
sub _spawn {
    my ($self, $out, @cmd) = @_;

    my $pid = fork() // die "fork: $!";
    return $pid if $pid;

    open STDIN, '<', '/dev/null';
    open STDOUT, '>', $out or POSIX::_exit(127);
    open STDERR, '>&', \*STDOUT;
    exec { $cmd[0] } @cmd or print STDERR "exec $cmd[0]: $!\n";
    POSIX::_exit(127);
}

# Polls $cond every 50 ms for $secs (times timeout_factor).
sub _wait {
    my ($self, $cond, $secs) = @_;

    my $end = time + $secs * $self->timeout_factor;

    while (1) {
        return 1 if $cond->();
        return 0 if time > $end;
        sleep 0.05;
    }
}

# Waits for 127.0.0.1:$port to accept; gives up early if $pid died.
sub _wait_port {
    my ($self, $port, $secs, $pid) = @_;

    my $dead = 0;

    $self->_wait(sub {
        return $dead = 1 if $pid && !_alive($pid);
        return IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                     Proto => 'tcp');
    }, $secs) or return 0;

    return !$dead;
}

# True while $pid runs; reaps it if it is our child.
sub _alive {
    my ($pid) = @_;

    return 0 if waitpid($pid, WNOHANG) == $pid;
    return 0 if !kill 0, $pid;

    my ($state) = _slurp("/proc/$pid/stat") =~ /\) (\S)/;
    return !defined $state || $state ne 'Z';
}

sub _slurp {
    my ($file) = @_;

    open my $fh, '<:raw', $file or return '';
    local $/;
    return scalar <$fh>;
}

sub _spurt {
    my ($file, $text) = @_;

    open my $fh, '>:raw', $file or die "cannot write $file: $!";
    print $fh $text;
    close $fh or die "cannot write $file: $!";
}

1;
