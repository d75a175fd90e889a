package MpnsTest;

# Small test harness in the nginx-tests style: one object per test file
# owns a temp dir, an nginx instance loading the module and optionally the
# MPNS simulator (util/mpns-simulator), plus helpers shared by the tests:
# waiting, error and access log reading, HTTP clients (one-shot and
# keep-alive), servers that misbehave on purpose and the common
# assertions about a send.  See t/00_harness.t for usage.
#
# Exported on request: http_conf, result, toast_xml, uri_escape, slurp.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use Exporter qw(import);
use Fcntl qw(:flock O_RDWR O_CREAT);
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

our @EXPORT_OK = qw(http_conf result toast_xml uri_escape slurp);

our $ROOT = abs_path(dirname(__FILE__) . '/../..');

my @objects;                    # weak refs, for the END block

# MpnsTest->new(%opts): fresh temp dir under t/tmp/, module and binary
# from TEST_NGINX_MODULE / TEST_NGINX_BINARY; a missing module bails out.
# tile => 1 loads ngx_http_mpns_tile_module too (TEST_NGINX_TILE_MODULE,
# else the file of that name next to the module), tile => 'only' alone.
sub new {
    my ($class, %opts) = @_;

    my $module = $ENV{TEST_NGINX_MODULE}
                 // "$ROOT/build/ngx_http_mpns_module.so";
    $module = File::Spec->rel2abs($module);

    my @load = ($opts{tile} // '') eq 'only' ? () : ($module);

    if ($opts{tile}) {
        push @load, File::Spec->rel2abs($ENV{TEST_NGINX_TILE_MODULE}
            // dirname($module) . '/ngx_http_mpns_tile_module.so');
    }

    for my $so (@load) {
        BAIL_OUT("module $so not found: run \"make\" first") if !-f $so;
    }

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
        load => \@load,
        binary => $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx',
        valgrind => $ENV{TEST_NGINX_VALGRIND} ? 1 : 0,
        ports => {},
        children => [],
        log_mark => 0,
        owner => $$,
    }, $class;

    push @objects, $self;
    weaken($objects[-1]);

    return $self;
}

# $t->testdir: the temp dir (absolute).
sub testdir { $_[0]{dir} }

# $t->modules: the .so files nginx.conf loads (absolute).
sub modules { @{$_[0]{load}} }

# $t->nginx_version: the version of the nginx binary the tests run
# ("1.22.1"), from "nginx -v".
sub nginx_version {
    my ($self) = @_;

    return $self->{nginx_version} //= do {
        my $out = "$self->{dir}/nginx-v.out";
        waitpid($self->_spawn($out, $self->{binary}, '-v'), 0);
        _slurp($out) =~ m{nginx/(\d+\.\d+\.\d+)}
            or die "no version in \"$self->{binary} -v\": " . _slurp($out);
        $1;
    };
}

# $t->has_version('1.27.2'): true if nginx is that version or newer, for
# what nginx itself changed between versions (as nginx-tests does).
sub has_version {
    my ($self, $want) = @_;

    my $num = sub { sprintf '%03d%03d%03d', split /\./, $_[0] };

    return $num->($self->nginx_version) ge $num->($want);
}

# $t->timeout_factor: 10 under valgrind, else 1; scales every wait.
sub timeout_factor { $_[0]{valgrind} ? 10 : 1 }

# $t->wait_for($cond, $secs): polls $cond every 50 ms for up to $secs
# (times timeout_factor); true as soon as $cond is, false on timeout.
sub wait_for {
    my ($self, $cond, $secs) = @_;

    my $end = time + $secs * $self->timeout_factor;

    while (1) {
        return 1 if $cond->();
        return 0 if time > $end;
        sleep 0.05;
    }
}

###############################################################################

# ports

# Listening ports come from a range below the kernel's ephemeral ports
# (ip_local_port_range), so no port 0 bind and no outgoing connection
# anywhere on the machine takes one, through one counter shared by every
# test process of every checkout: a file under the system temp dir (or
# t/tmp/ if that is not writable), read and advanced under flock.  A port
# is handed out once per pass over the range, and only if a bind test
# finds it free, so files run by "prove -j" never get the same port.

my @PORT_RANGE;

sub _port_range {
    return @PORT_RANGE if @PORT_RANGE;

    my ($eph) = _slurp('/proc/sys/net/ipv4/ip_local_port_range')
                =~ /^\s*(\d+)/;

    my $hi = defined $eph && $eph <= 30000 ? $eph - 1 : 29999;
    my $lo = $hi - 9999;
    ($lo, $hi) = (20000, 29999) if $lo < 1024;

    return @PORT_RANGE = ($lo, $hi);
}

# The counter file, opened and locked: (handle, path).
sub _port_counter {
    for my $dir (File::Spec->tmpdir, "$ROOT/t/tmp") {
        my $file = "$dir/mpns-test-ports";
        sysopen(my $fh, $file, O_RDWR | O_CREAT, 0666) or next;
        flock($fh, LOCK_EX) or die "cannot lock $file: $!";
        return ($fh, $file);
    }

    die "no writable counter file for test ports";
}

sub _port_free {
    my ($port) = @_;

    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $port, Proto => 'tcp',
                                  Listen => 1)
        or return 0;
    close $s;

    return 1;
}

sub _alloc_port {
    my ($lo, $hi) = _port_range();
    my ($fh, $file) = _port_counter();

    my $next = do { local $/; <$fh> } // '';
    ($next) = $next =~ /^(\d+)/;
    $next = $lo + $$ % ($hi - $lo + 1)
        if !defined $next || $next < $lo || $next > $hi;

    for (0 .. $hi - $lo) {
        my $port = $next;
        $next = $next >= $hi ? $lo : $next + 1;

        next if !_port_free($port);

        seek($fh, 0, 0);
        truncate($fh, 0);
        print $fh "$next\n";
        close $fh or die "cannot write $file: $!";     # also unlocks

        return $port;
    }

    die "no free port in $lo-$hi";
}

# $t->port($name): a TCP port on 127.0.0.1 for a listener, stable per
# name, that no other test process gets (see above).  "sim", "sim2":
# the simulator's ports once it runs (the ports it picked itself unless
# asked for before sim_start).
sub port {
    my ($self, $name) = @_;
    return $self->{ports}{$name} //= _alloc_port();
}

###############################################################################

# the simulator

# $t->certs: the directory of the test certificates made by
# util/gen-test-certs (t/tmp/certs, shared by every test file; made once,
# under a flock, by the first file that asks).
sub certs {
    my ($self) = @_;

    return $self->{certs} if $self->{certs};

    my $dir = "$ROOT/t/tmp/certs";

    if (!-f "$dir/done") {
        make_path("$ROOT/t/tmp");
        sysopen(my $lock, "$ROOT/t/tmp/certs.lock", O_RDWR | O_CREAT, 0666)
            or die "cannot open $ROOT/t/tmp/certs.lock: $!";
        flock($lock, LOCK_EX) or die "cannot lock certs.lock: $!";

        if (!-f "$dir/done") {
            my $out = "$ROOT/t/tmp/certs.log";
            waitpid($self->_spawn($out, "$ROOT/util/gen-test-certs", $dir),
                    0);
            die "util/gen-test-certs failed:\n" . _slurp($out) if $? != 0;
        }

        close $lock;
    }

    return $self->{certs} = $dir;
}

# $t->sim_start(second => 1?, dns => 1?, tls => 1?, strict => 1?,
# proxy => 1?, client_ca => 1?, server_cert => 'server'): runs
# util/mpns-simulator (or $ENV{MPNS_SIMULATOR}) listening on port('sim')
# (and port('sim2')) and, with dns, answering DNS on a UDP port
# (dns_port); with tls an HTTPS listener on port('sim_tls'), with strict
# one that fails the handshake without a valid client certificate on
# port('sim_tls_strict'), with proxy the forward proxy on port('proxy').
# TLS listeners present certs/SERVER_CERT.crt (default "server";
# "untrusted-server" for a certificate clients do not trust) and, for SNI
# "other.test", other-server.crt; client_ca (implied by strict) checks
# client certificates against certs/ca.crt.  Ports not asked for before
# are picked by the simulator itself (port 0) and read from the lines it
# prints.  Waits until it listens, then resets it.
sub sim_start {
    my ($self, %opts) = @_;

    my @names = ('sim', $opts{second} ? 'sim2' : ());
    my %extra = (sim_tls => ['tls', '--tls-listen', $opts{tls}],
                 sim_tls_strict => ['tls-strict', '--tls-strict-listen',
                                    $opts{strict}],
                 proxy => ['proxy', '--proxy-listen', $opts{proxy}]);
    my @extra = grep { $extra{$_}[2] } sort keys %extra;
    my $log = "$self->{dir}/sim.log";

    my @cmd = ($ENV{MPNS_SIMULATOR} // "$ROOT/util/mpns-simulator");
    push @cmd, '--listen', '127.0.0.1:' . ($self->{ports}{$_} // 0)
        for @names;
    push @cmd, '--dns', '127.0.0.1:0' if $opts{dns};
    push @cmd, $extra{$_}[1], '127.0.0.1:' . ($self->{ports}{$_} // 0)
        for @extra;

    if ($opts{tls} || $opts{strict}) {
        my $c = $self->certs;
        my $server = $opts{server_cert} // 'server';
        push @cmd, '--tls-cert', "$c/$server.crt", '--tls-key',
            "$c/$server.key", '--tls-sni',
            "other.test=$c/other-server.crt,$c/other-server.key";
        push @cmd, '--client-ca', "$c/ca.crt"
            if $opts{client_ca} || $opts{strict};
    }

    my $pid = $self->{sim_pid} = $self->_spawn($log, @cmd);

    my ($dead, @http, $dns, %got) = (0);

    $self->wait_for(sub {
        return $dead = 1 if !_alive($pid);
        my $text = _slurp($log);
        @http = $text =~ /listening on 127\.0\.0\.1:(\d+)\n/g;
        ($dns) = $text =~ /answering DNS on 127\.0\.0\.1:(\d+) /;
        for my $name (@extra) {
            my $what = " ($extra{$name}[0])";
            ($got{$name}) = $text =~
                /listening on 127\.0\.0\.1:(\d+)\Q$what\E\n/;
        }
        return @http == @names && ($dns || !$opts{dns})
               && !grep { !$got{$_} } @extra;
    }, 10);

    die "simulator did not start:\n" . _slurp($log)
        if $dead || @http != @names || ($opts{dns} && !$dns)
           || grep { !$got{$_} } @extra;

    @{$self->{ports}}{@names} = @http;
    @{$self->{ports}}{@extra} = @got{@extra};
    $self->{dns_port} = $dns;

    # a simulator that answers
    $self->sim_reset;

    return $self;
}

# $t->sim_port: the simulator's (first) port.
sub sim_port { $_[0]->port('sim') }

# $t->dns_port: the simulator's DNS (UDP) port; needs sim_start(dns => 1).
sub dns_port {
    my ($self) = @_;
    return $self->{dns_port} // die "the simulator answers no DNS\n";
}

# $t->sim_url($path): "http://127.0.0.1:PORT$path" for the simulator.
sub sim_url {
    my ($self, $path) = @_;
    return 'http://127.0.0.1:' . $self->sim_port . ($path // '');
}

# $t->sim_tls_url($path, strict => 1?, host => '127.0.0.1'):
# "https://HOST:PORT$path" for the simulator's (strict) TLS listener.
sub sim_tls_url {
    my ($self, $path, %opts) = @_;
    return 'https://' . ($opts{host} // '127.0.0.1') . ':'
           . $self->port($opts{strict} ? 'sim_tls_strict' : 'sim_tls')
           . ($path // '');
}

# $t->tls_connect(port => ..., cert => 'client-a', %ssl): a connected
# IO::Socket::SSL client socket to 127.0.0.1 (default port('sim_tls'))
# trusting certs/ca.crt, with client certificate certs/CERT.crt if cert
# is given; other SSL_* options are passed on (SSL_hostname for SNI,
# SSL_session_cache, ...).  Dies when the handshake fails; the answer is
# read with http_start(socket => $s) and http_response or http_finish.
sub tls_connect {
    my ($self, %opts) = @_;

    require IO::Socket::SSL;

    my $port = delete $opts{port} // $self->port('sim_tls');
    my $cert = delete $opts{cert};
    my $c = $self->certs;

    my $s = IO::Socket::SSL->new(
        PeerAddr => "127.0.0.1:$port",
        SSL_ca_file => "$c/ca.crt",
        SSL_verifycn_name => $opts{SSL_hostname} // 'localhost',
        SSL_verifycn_scheme => 'http',
        (defined $cert ? (SSL_cert_file => "$c/$cert.crt",
                          SSL_key_file => "$c/$cert.key") : ()),
        %opts,
    ) or die "TLS connect to 127.0.0.1:$port: "
             . IO::Socket::SSL::errstr() . "\n";

    return $s;
}

# $t->sim_reset: forgets recorded requests, scripts and counters (the DNS
# ones too).
sub sim_reset { $_[0]->_sim('POST', '/_sim/reset') }

# $t->sim_stats: { accepted, open, requests, dns_queries, dns_names }, all
# since the last reset: MPNS connections accepted and open now, MPNS
# requests, valid DNS queries, and those per name ({ name => count },
# lower case, no final dot).  Control (/_sim/) connections do not count.
# Also tls_handshakes and tls_resumed (full and resumed TLS handshakes),
# proxy_connections, proxy_requests and proxy_connects (client
# connections, absolute-form requests and CONNECT tunnels of the proxy).
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

###############################################################################

# nginx

# http_conf($text, defaults => 1?): a whole nginx.conf whose http block
# holds $text (what the test configures: servers, mpns_* directives,
# indented as inside http), after %%TEST_GLOBALS%%, an empty events block
# and %%TEST_GLOBALS_HTTP%%.  Every test sends to servers of its own on
# 127.0.0.1 at ports picked at run time, which the module refuses by
# default, so the http block first allows loopback addresses and every
# port (mpns_allowed_addresses, mpns_allowed_ports); defaults => 1 leaves
# that out, for tests of the defaults.
sub http_conf {
    my ($text, %opts) = @_;

    my $allow = $opts{defaults} ? ''
        : "    mpns_allowed_addresses 127.0.0.0/8;\n"
          . "    mpns_allowed_ports 1-65535;\n";

    return "\n%%TEST_GLOBALS%%\n\nevents {\n}\n\n"
           . "http {\n    %%TEST_GLOBALS_HTTP%%\n$allow$text}\n";
}

# $t->write_conf($text): expands placeholders, writes nginx.conf.
# Placeholders: %%TEST_GLOBALS%% (main context), %%TEST_GLOBALS_HTTP%%
# (http context), %%PORT%% (port('http')), %%PORT_NAME%% (port('name')),
# %%SIM_PORT%%, %%SIM2_PORT%%, %%DNS_PORT%%, %%TESTDIR%%,
# %%SIM_TLS_PORT%%, %%SIM_TLS_STRICT_PORT%%, %%PROXY_PORT%% and %%CERTS%%
# (the test certificates' directory, see certs).
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

    my $g = join('', map { "load_module $_;\n" } @{$self->{load}})
            . "pid $d/nginx.pid;\nerror_log $log debug;\n";
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
    $text =~ s/%%DNS_PORT%%/$self->dns_port/ge;
    $text =~ s/%%SIM_TLS_PORT%%/$self->port('sim_tls')/ge;
    $text =~ s/%%SIM_TLS_STRICT_PORT%%/$self->port('sim_tls_strict')/ge;
    $text =~ s/%%PROXY_PORT%%/$self->port('proxy')/ge;
    $text =~ s/%%CERTS%%/$self->certs/ge;
    $text =~ s/%%TESTDIR%%/$d/g;

    return $text;
}

sub _nginx_args {
    my ($self, $conf, $log) = @_;
    return ($self->{binary}, '-p', "$self->{dir}/", '-c', $conf, '-e', $log);
}

# The number of worker processes nginx.conf asks for.
sub _conf_workers {
    my ($self) = @_;

    my ($n) = _slurp("$self->{dir}/nginx.conf")
              =~ /^\s*worker_processes\s+(\w+)\s*;/m;

    return 1 if !defined $n;
    return $n if $n =~ /^\d+$/;

    # "auto": the CPUs online, as nginx counts them
    my $cpus = 0;
    for (split /,/, _slurp('/sys/devices/system/cpu/online')) {
        $cpus += /^(\d+)-(\d+)$/ ? $2 - $1 + 1 : /^\d+$/ ? 1 : 0;
    }
    $cpus ||= () = _slurp('/proc/cpuinfo') =~ /^processor\s*:/mg;

    return $cpus || 1;
}

# $t->run: starts nginx; waits for port('http') if the conf used %%PORT%%,
# else for the pid file, then for all the worker processes the conf asks
# for (worker_processes, default 1); dies with the error log on failure.
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

        $self->wait_for(sub { -s "$d/nginx.pid" }, $limit)
            or die "nginx wrote no pid file:\n" . _slurp("$d/error.log");
        ($self->{master}) = _slurp("$d/nginx.pid") =~ /(\d+)/;
    }

    my $ok = $self->{http_wait}
        ? $self->_wait_port($self->port('http'), $limit, $self->{master})
        : $self->wait_for(sub { -s "$d/nginx.pid" }, $limit);

    die "nginx did not start:\n" . _slurp("$d/error.log") if !$ok;

    # the listening socket accepts before the workers are forked
    my $n = $self->_conf_workers;
    my $master = $self->{master};

    $self->wait_for(sub { $self->worker_pids >= $n || !_alive($master) },
                    $self->{valgrind} ? 3 * $limit : $limit);

    die "nginx did not start its $n worker(s):\n" . _slurp("$d/error.log")
        if $self->worker_pids < $n;

    return $self;
}

# $t->stop: QUIT to the master, waits up to 30 s, then TERM, then KILL.
sub stop {
    my ($self) = @_;

    my $pid = delete $self->{master} or return $self;

    for my $sig (qw(QUIT TERM KILL)) {
        kill $sig, $pid;
        return $self if $self->wait_for(sub { !_alive($pid) },
                                        $sig eq 'QUIT' ? 30 : 5);
        diag("nginx $pid did not exit on $sig");
    }

    return $self;
}

# $t->restart($text): a clean slate for the next case: stops nginx, writes
# $text (if given) as nginx.conf, runs nginx (fresh workers, no cached
# connections), resets the simulator if it runs, and sets the log mark.
sub restart {
    my ($self, $text) = @_;

    $self->stop;
    $self->write_conf($text) if defined $text;
    $self->run;
    $self->sim_reset if $self->{sim_pid};
    $self->log_mark;

    return $self;
}

# $t->reload(wait_old => 1): HUP; waits for a whole new generation of
# workers (as many as nginx.conf asks for) and (unless wait_old => 0) up
# to 10 s for the old workers to exit.
sub reload {
    my ($self, %opts) = @_;

    my %old = map { $_ => 1 } $self->worker_pids;
    my $n = $self->_conf_workers;

    my $master = $self->{master} or die "nginx is not running";
    kill 'HUP', $master or die "cannot signal nginx $master: $!";

    $self->wait_for(sub { grep({ !$old{$_} } $self->worker_pids) >= $n },
                    $self->{valgrind} ? 30 : 10)
        or die "no new $n worker(s) after reload:\n" . $self->error_log;

    $self->wait_for(sub { !grep { _alive($_) } keys %old }, 10)
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

# $t->alive($pid): true while process $pid runs (not a zombie).
sub alive { _alive($_[1]) }

# $t->nginx_test($text): "nginx -t" on the expanded text in a file and
# error log of its own (t-N.conf, t-N-error.log); returns ($exit_code,
# this run's stdout, stderr and error log).
sub nginx_test {
    my ($self, $text) = @_;

    my $d = $self->{dir};
    my $n = ++$self->{conf_n};
    my $log = "$d/t-$n-error.log";

    _spurt("$d/t-$n.conf", $self->_expand($text, $log));

    my @cmd = $self->_nginx_args("$d/t-$n.conf", $log);
    splice @cmd, 1, 0, '-t';

    # a failed test returns from nginx's main() without destroying the
    # pool it created, a leak of nginx core LeakSanitizer would report;
    # what the module allocates while parsing is still checked when
    # nginx itself starts and exits
    local $ENV{ASAN_OPTIONS} = "$ENV{ASAN_OPTIONS}:detect_leaks=0"
        if defined $ENV{ASAN_OPTIONS};

    waitpid($self->_spawn("$d/t-$n.out", @cmd), 0);

    return ($? >> 8, _slurp("$d/t-$n.out") . _slurp($log));
}

###############################################################################

# HTTP clients

# $t->http_connect(port => ..., local => '127.0.0.2'?): a connected socket
# to 127.0.0.1 (default port('http')), from the local address given (a
# client other than 127.0.0.1, for allow and deny).
sub http_connect {
    my ($self, %opts) = @_;

    my $port = $opts{port} // $self->port('http');
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Proto => 'tcp',
                                  ($opts{local} ? (LocalAddr => $opts{local})
                                                : ()))
        or die "cannot connect to 127.0.0.1:$port: $!";
    binmode $s;

    return $s;
}

# $t->http_start($method, $uri, %opts): connects and writes the request;
# returns the socket.  opts: headers => [name => value, ...], body, port,
# local (see http_connect); socket => an open connection to write on
# instead; keepalive => 1: no "Connection: close" (else added unless in
# headers); chunks => [...]: a chunked body ("Transfer-Encoding: chunked"
# added unless in headers), written after the header block in a write of
# its own.
sub http_start {
    my ($self, $method, $uri, %opts) = @_;

    my $s = $opts{socket} // $self->http_connect(%opts);

    my @h = @{$opts{headers} // []};
    my %has;
    for (my $i = 0; $i < @h; $i += 2) {
        $has{lc $h[$i]} = 1;
    }

    my $req = "$method $uri HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" if !$has{host};
    $req .= "Connection: close\r\n" if !$has{connection} && !$opts{keepalive};
    $req .= "Content-Length: " . length($opts{body}) . "\r\n"
        if defined $opts{body} && !$has{'content-length'};
    $req .= "Transfer-Encoding: chunked\r\n"
        if $opts{chunks} && !$has{'transfer-encoding'};

    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n";
    }

    $req .= "\r\n" . ($opts{body} // '');

    _write_all($s, $req);

    if ($opts{chunks}) {
        _write_all($s, join('', map { sprintf("%x\r\n%s\r\n", length, $_) }
                                    @{$opts{chunks}}) . "0\r\n\r\n");
    }

    return $s;
}

# $t->http_finish($s, timeout => 10): reads until the server closes,
# closes $s; returns the answer as http does.
sub http_finish {
    my ($self, $s, %opts) = @_;

    my $sel = IO::Select->new($s);
    my $end = time + ($opts{timeout} // 10) * $self->timeout_factor;
    my ($raw, $error) = (delete(${*$s}{mpns_buf}) // '');

    while (1) {
        my $left = $end - time;
        if (!_pending($s) && ($left <= 0 || !$sel->can_read($left))) {
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

# $t->http($method, $uri, %opts): one request/response (see http_start;
# plus timeout => 10).  Returns { status, headers, header_list, body,
# json, raw }, and "error" (status undef) on timeout.
sub http {
    my ($self, $method, $uri, %opts) = @_;
    return $self->http_finish($self->http_start($method, $uri, %opts),
                              %opts);
}

# $t->http_response($s, timeout => 10): reads one answer from a
# keep-alive connection: delimited by Content-Length, else by the server
# closing; what follows stays buffered with $s.  Returns it as http does;
# an incomplete answer has "error" (timeout, eof) and status undef.
sub http_response {
    my ($self, $s, %opts) = @_;

    my $buf = \${*$s}{mpns_buf};
    $$buf //= '';

    my $sel = IO::Select->new($s);
    my $end = time + ($opts{timeout} // 10) * $self->timeout_factor;

    while (1) {
        if ($$buf =~ /\r\n\r\n/) {
            my $hlen = $+[0];
            my ($len) = substr($$buf, 0, $hlen)
                        =~ /^Content-Length:\s*(\d+)/mi;

            return _parse_response(substr($$buf, 0, $hlen + $len, ''))
                if defined $len && length $$buf >= $hlen + $len;
        }

        my $left = $end - time;
        my $error = 'timeout';

        if (_pending($s) || $left > 0 && $sel->can_read($left)) {
            my $n = $s->sysread($$buf, 65536, length $$buf);
            next if $n;
            $error = defined $n ? 'eof' : "read: $!";
        }

        # an answer without Content-Length ends where the connection does
        return _parse_response(substr($$buf, 0, length $$buf, ''))
            if $error eq 'eof' && $$buf =~ /\r\n\r\n/
               && substr($$buf, 0, $-[0]) !~ /^Content-Length:/mi;

        my $r = _parse_response('', $error);
        $r->{raw} = $$buf;
        return $r;
    }
}

# $t->http_get($uri, %opts): GET shortcut.
sub http_get {
    my ($self, $uri, %opts) = @_;
    return $self->http('GET', $uri, %opts);
}

# $t->post_json($uri, $data_or_string, %opts): POST application/json.
sub post_json {
    my ($self, $uri, $data, %opts) = @_;
    return $self->http('POST', $uri, _json_body($data, %opts));
}

# $t->post_body($uri, $content_type, $body, %opts): POST with that
# Content-Type.
sub post_body {
    my ($self, $uri, $type, $body, %opts) = @_;
    return $self->http('POST', $uri, %opts, body => $body,
                       headers => ['Content-Type' => $type,
                                   @{$opts{headers} // []}]);
}

# $t->push_toast($channel, uri => '/push', %opts): posts the toast
# { channel, type toast, text1 "Hi" } as JSON to uri (other opts as for
# http); returns the answer.
sub push_toast {
    my ($self, $channel, %opts) = @_;

    my $uri = delete $opts{uri} // '/push';

    return $self->post_json($uri, { channel => $channel, type => 'toast',
                                    text1 => 'Hi' }, %opts);
}

# $t->push_toast_start($channel, %opts): the same request, only written
# (see http_start); returns the socket.
sub push_toast_start {
    my ($self, $channel, %opts) = @_;

    my $uri = delete $opts{uri} // '/push';

    return $self->http_start('POST', $uri, _json_body(
        { channel => $channel, type => 'toast', text1 => 'Hi' }, %opts));
}

sub _json_body {
    my ($data, %opts) = @_;

    my $body = ref $data ? JSON::PP->new->utf8->canonical->encode($data)
                         : $data;

    return (%opts, body => $body,
            headers => ['Content-Type' => 'application/json',
                        @{$opts{headers} // []}]);
}

# Bytes a TLS socket holds decrypted (select cannot see them).
sub _pending {
    my ($s) = @_;
    return $s->can('pending') && $s->pending;
}

sub _write_all {
    my ($s, $data) = @_;

    while (length $data) {
        my $n = $s->syswrite($data) // die "write: $!";
        substr($data, 0, $n, '');
    }
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

###############################################################################

# logs

# $t->error_log: the text of error.log.
sub error_log { _slurp("$_[0]{dir}/error.log") }

# $t->error_log_lines($filter): error.log lines that pass $filter: a
# level ("error": lines containing "[error]"), a qr// to match, or undef
# for all.
sub error_log_lines {
    my ($self, $filter) = @_;
    return $self->log_since($filter, 0);
}

# $t->log_mark: remembers the end of error.log as the mark and returns it
# (an offset for log_since).
sub log_mark {
    my ($self) = @_;
    return $self->{log_mark} = length $self->error_log;
}

# $t->log_since($filter, $mark): error.log lines written after offset
# $mark (default: the last log_mark) that pass $filter (see
# error_log_lines).
sub log_since {
    my ($self, $filter, $mark) = @_;

    my $log = $self->error_log;
    $mark //= $self->{log_mark};
    $mark = length $log if $mark > length $log;

    my @lines = split /\n/, substr($log, $mark);

    return @lines if !defined $filter;
    return grep { $_ =~ $filter } @lines if ref $filter eq 'Regexp';
    return grep { index($_, "[$filter]") >= 0 } @lines;
}

# $t->access_log_lines($file): the complete lines (without "\n") of an
# access log in testdir, access.log unless named.
sub access_log_lines {
    my ($self, $file) = @_;

    my $text = _slurp("$self->{dir}/" . ($file // 'access.log'));
    $text =~ s/[^\n]+\z//;

    return split /\n/, $text;
}

###############################################################################

# servers that misbehave on purpose

# $t->fake_server(\%answers): a tiny HTTP/1.1 server in a forked child on
# port('fake'), for answers the simulator cannot give.  It reads requests
# (Content-Length bodies), answers each by its path from %answers (raw
# bytes, an array of chunks written one at a time a little apart, or
# { chunks => [...], delay => seconds } for chunks that far apart, which
# holds the server for as long, until the client goes away; else a 500)
# and never closes a connection itself; fake_requests tells what it got.
# Returns the port; stopped by done.
sub fake_server {
    my ($self, $answers) = @_;

    my $port = $self->port('fake');
    my $log = "$self->{dir}/fake.log";

    my $ls = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
                                   Listen => 16, ReuseAddr => 1,
                                   Proto => 'tcp')
        or die "cannot listen on 127.0.0.1:$port: $!";

    my $pid = fork() // die "fork: $!";

    if ($pid) {
        close $ls;
        push @{$self->{children}}, $pid;
        return $port;
    }

    $SIG{PIPE} = 'IGNORE';

    my $sel = IO::Select->new($ls);
    my (%buf, %id);
    my $n = 0;

    while (1) {
        for my $s ($sel->can_read) {

            if ($s == $ls) {
                my $c = $ls->accept or next;
                binmode $c;
                $sel->add($c);
                $id{$c} = ++$n;
                $buf{$c} = '';
                next;
            }

            my $got = sysread($s, $buf{$s}, 65536, length $buf{$s});

            if (!$got) {
                $sel->remove($s);
                delete $buf{$s};
                close $s;
                next;
            }

            while ($buf{$s} =~ /\r\n\r\n/) {
                my $hlen = $+[0];
                my ($len) = substr($buf{$s}, 0, $hlen)
                            =~ /^Content-Length:\s*(\d+)/mi;
                $len //= 0;
                last if length($buf{$s}) < $hlen + $len;

                my $req = substr($buf{$s}, 0, $hlen + $len, '');
                my ($path) = $req =~ m{^\S+ (\S+)};

                open my $fh, '>>', $log or POSIX::_exit(1);
                print $fh "$id{$s} $path\n";
                close $fh;

                my $answer = $answers->{$path}
                             // "HTTP/1.1 500 No Script\r\n"
                                . "Content-Length: 0\r\n\r\n";

                # chunks go out one write at a time, until one fails
                my ($chunks, $delay) =
                      ref $answer eq 'HASH' ? @$answer{qw(chunks delay)}
                    : ref $answer ? ($answer, 0.002)
                    : ([$answer], 0);

                for my $chunk (@$chunks) {
                    last if !defined syswrite($s, $chunk);
                    sleep($delay) if $delay;
                }
            }
        }
    }
}

# $t->fake_requests: [connection number, path] of every request the fake
# server got, in order.
sub fake_requests {
    my ($self) = @_;
    return map { [ split / /, $_, 2 ] }
           split /\n/, _slurp("$self->{dir}/fake.log");
}

# $t->fake_conn($path): the connection number of the last request for
# $path the fake server got (undef if none).
sub fake_conn {
    my ($self, $path) = @_;
    my @hits = grep { $_->[1] eq $path } $self->fake_requests;
    return @hits ? $hits[-1][0] : undef;
}

# $t->fake_dns(\%names): a DNS responder in a forked child on UDP
# port('fake_dns') of 127.0.0.1, for answers the simulator's (one address
# for every name) cannot give: an A query for a name of %names (lower
# case, no final dot) is answered with all the IPv4 addresses of its list
# in one answer, in that order; a query for any other name with
# NXDOMAIN.  Returns the port; stopped by done.
sub fake_dns {
    my ($self, $names) = @_;

    my $port = $self->port('fake_dns');

    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
                                  Proto => 'udp')
        or die "cannot bind udp 127.0.0.1:$port: $!";

    my $pid = fork() // die "fork: $!";

    if ($pid) {
        close $s;
        push @{$self->{children}}, $pid;
        return $port;
    }

    while (1) {
        my $peer = recv($s, my $query, 512, 0);
        next if !defined $peer || length $query < 12;

        my ($id, $flags) = unpack 'n n', $query;
        my ($pos, @labels) = (12);

        while ($pos < length $query) {
            my $len = ord substr($query, $pos++, 1);
            last if $len == 0;
            push @labels, lc substr($query, $pos, $len);
            $pos += $len;
        }

        next if $pos + 4 > length $query;

        my $qtype = unpack 'n', substr($query, $pos, 2);
        my $addrs = $names->{join '.', @labels};

        # QR AA RA, RD as asked; answers point back to the question name
        my @an = $addrs && $qtype == 1 ? @$addrs : ();
        my $answer = join '', map { pack('n n n N n C4', 0xC00C, 1, 1, 1, 4,
                                         split /\./) } @an;

        send($s, pack('n6', $id, 0x8480 | ($flags & 0x0100)
                                 | ($addrs ? 0 : 3),
                      1, scalar @an, 0, 0)
                 . substr($query, 12, $pos + 4 - 12) . $answer, 0, $peer);
    }
}

# $t->blackhole: a listener on 127.0.0.1 with backlog 1 that never
# accepts, its accept queue full.  Linux queues backlog + 1 = 2 finished
# handshakes; with the queue full it drops further SYNs (it does not
# answer them), so a connect() to it stays in progress until the client's
# own timeout.  The fillers connect non-blocking: the third one is itself
# left waiting.  Returns an object with ->port; all its sockets close on
# ->close or when it goes out of scope.
sub blackhole {
    my ($self) = @_;

    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Listen => 1, Proto => 'tcp')
        or die "cannot listen: $!";
    my $port = $ls->sockport;

    my @fill = map {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                              Proto => 'tcp', Blocking => 0)
    } 1 .. 3;

    sleep 0.2;

    return bless { port => $port, socks => [ (grep { defined } @fill), $ls ] },
                 'MpnsTest::Blackhole';
}

package MpnsTest::Blackhole {
    sub port { $_[0]{port} }
    sub close { CORE::close($_) for splice @{$_[0]{socks}} }
    sub DESTROY { $_[0]->close }
}

###############################################################################

# what tests of mpns_send share

# $t->delivered($name, $send, $check): a subtest: after sim_reset,
# $send->() (makes the request, returns the answer) is answered 200,
# exactly one notification reaches the simulator, no [error] is logged;
# then $check, if given, gets the recorded request (an empty one if none)
# and the answer.
sub delivered {
    my ($self, $name, $send, $check) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        $self->sim_reset;
        my $mark = length $self->error_log;

        my $r = $send->();
        is($r->{status}, 200, 'answer 200') or diag($r->{raw});

        my $sims = $self->sim_requests;
        is(scalar @$sims, 1, 'one notification sent');
        is(join("\n", $self->log_since('error', $mark)), '',
           'no [error] lines');

        $check->($sims->[0] // { hdr => {}, body => '' }, $r) if $check;
    };
}

# $t->refused($name, $status, $error, $field, $send, $check): a subtest:
# after sim_reset, $send->() is refused with exactly $status and the JSON
# { error => $error, field => $field }, nothing reaches the simulator, and
# 'mpns request refused: $error, field "$field"' is logged at info; then
# $check, if given, gets the answer.
sub refused {
    my ($self, $name, $status, $error, $field, $send, $check) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        $self->sim_reset;
        my $mark = length $self->error_log;

        my $r = $send->();
        is($r->{status}, $status, "answer $status") or diag($r->{raw});
        like($r->{headers}{'content-type'} // '',
             qr{^application/json\s*(;.*)?$}, 'answer is application/json');
        is_deeply($r->{json}, { error => $error, field => $field },
                  qq{{"error":"$error","field":"$field"}})
            or diag($r->{body});
        is(scalar @{$self->sim_requests}, 0, 'nothing sent');

        my $line = qq{mpns request refused: $error, field "$field"};
        ok((grep { index($_, $line) >= 0 } $self->log_since('info', $mark)),
           'info log line')
            or diag(join "\n", $self->log_since('info', $mark));

        $check->($r) if $check;
    };
}

# result($r): "STATUS OUTCOME" of an answer ("none" for a missing status
# or outcome, "no-json" without a JSON body), for compact assertions.
sub result {
    my ($r) = @_;
    return ($r->{status} // 'none') . ' '
           . ($r->{json} ? $r->{json}{outcome} // 'none' : 'no-json');
}

# toast_xml(Text1 => ..., Text2 =>, Sound =>, Param =>): the toast
# document the module sends for those elements (values as sent, escaped).
sub toast_xml {
    my (%f) = @_;

    my $x = '<?xml version="1.0" encoding="utf-8"?>'
            . '<wp:Notification xmlns:wp="WPNotification"><wp:Toast>';

    for my $n (qw(Text1 Text2 Sound Param)) {
        $x .= "<wp:$n>$f{$n}</wp:$n>" if defined $f{$n};
    }

    return $x . '</wp:Toast></wp:Notification>';
}

# uri_escape($s): %XX for every byte but unreserved ones (UTF-8 first for
# a character string).
sub uri_escape {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# slurp($file): the bytes of $file, '' if it cannot be read.
sub slurp { _slurp(@_) }

###############################################################################

# $t->tolerate(qr/.../): error.log lines matching it do not count as
# alerts in done (for a test that provokes a [crit] or [emerg] on purpose
# and asserts the line itself).
sub tolerate {
    my ($self, $re) = @_;

    push @{$self->{tolerate}}, $re;

    return $self;
}

# $t->done: stops nginx, the simulator and the fake servers, then tests
# "no alerts" in error.log, no sanitizer report (ASan, LSan, UBSan) in
# any of nginx's output, "nginx -t" runs included, and, under valgrind,
# "no valgrind errors".  Call it before done_testing; it runs from END
# otherwise.
sub done {
    my ($self, $quiet) = @_;

    return if $self->{done}++;

    $self->_cleanup;

    my $d = $self->{dir};
    my $sanitizer = qr/Sanitizer|runtime error:/;

    my @bad = grep { /\[(alert|emerg|crit)\]|segfault|$sanitizer/
                     || /exited on signal/ } split /\n/, $self->error_log;

    for my $re (@{$self->{tolerate} // []}) {
        @bad = grep { $_ !~ $re } @bad;
    }

    for my $file (grep { -f } "$d/nginx.stderr", glob("$d/t-*.out"),
                               glob("$d/t-*-error.log"))
    {
        push @bad, map { "$file: $_" }
                   grep { /$sanitizer/ } split /\n/, _slurp($file);
    }

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

    my @pids = grep { defined }
               delete($self->{sim_pid}), splice @{$self->{children}};

    kill 'TERM', @pids if @pids;

    for my $pid (@pids) {
        $self->wait_for(sub { !_alive($pid) }, 5) or kill 'KILL', $pid;
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

# Waits for 127.0.0.1:$port to accept; gives up early if $pid died.
sub _wait_port {
    my ($self, $port, $secs, $pid) = @_;

    my $dead = 0;

    $self->wait_for(sub {
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
    return scalar(<$fh>) // '';    # a process gone since the open
}

sub _spurt {
    my ($file, $text) = @_;

    open my $fh, '>:raw', $file or die "cannot write $file: $!";
    print $fh $text;
    close $fh or die "cannot write $file: $!";
}

1;
