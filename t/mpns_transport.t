#!/usr/bin/perl

# Transport behaviour of mpns_send (docs/directives.md, docs/api.md):
# connection reuse and its limits, the one retry on a stale keep-alive
# connection, connect/read timeouts, servers that answer badly, and names
# resolved through nginx's resolver.

use strict;
use warnings;

use Test::More;

use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use lib 't/lib';
use MpnsTest;

my $t = MpnsTest->new;
my $main_pid = $$;
my @children;                   # in-test servers, killed at the end

$t->sim_start(second => 1);

my $sim = $t->sim_port;
my $sim2 = $t->port('sim2');

###############################################################################

# helpers

# a toast to $channel through $location
sub push_to {
    my ($channel, $location) = @_;
    return $t->post_json($location // '/push',
                         { channel => $channel, type => 'toast',
                           text1 => 'Hi' });
}

# "STATUS OUTCOME" of an answer, for compact assertions
sub result {
    my ($r) = @_;
    return ($r->{status} // 'none') . ' '
           . ($r->{json} ? $r->{json}{outcome} // 'none' : 'no-json');
}

my $log_mark = 0;

sub mark_log { $log_mark = length $t->error_log }

# error.log lines at $level written since the last mark_log
sub new_lines {
    my ($level) = @_;
    return grep { index($_, "[$level]") >= 0 }
           split /\n/, substr($t->error_log, $log_mark);
}

sub no_new_errors {
    my ($name) = @_;
    my @e = new_lines('error');
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(join("\n", @e), '', $name);
}

# one [error] line since the mark has the literal @$parts in this order
sub new_error_like {
    my ($parts, $name) = @_;
    my $re = join '.*', map { quotemeta } @$parts;
    $re = qr/\[error\] .*$re/;
    my @e = grep { $_ =~ $re } new_lines('error');
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(scalar @e, $name)
        or diag("[error] lines since mark:\n"
                . join("\n", new_lines('error')));
}

sub wait_for {
    my ($cond, $secs) = @_;
    my $end = time + $secs * $t->timeout_factor;
    while (1) {
        return 1 if $cond->();
        return 0 if time > $end;
        sleep 0.05;
    }
}

# nginx with a fresh worker (no cached connections) and a reset simulator
sub fresh_nginx {
    my ($conf) = @_;
    $t->stop;
    $t->write_conf($conf);
    $t->run;
    $t->sim_reset;
    mark_log();
}

# A tiny HTTP/1.1 server in a forked child for answers the simulator cannot
# give.  It reads requests (Content-Length bodies), answers each by its
# path from %$answers (raw bytes) and never closes a connection itself; it
# appends "CONN PATH" for every request to $log.
sub fake_server {
    my ($port, $log, $answers) = @_;

    my $ls = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
                                   Listen => 16, ReuseAddr => 1,
                                   Proto => 'tcp')
        or die "cannot listen on 127.0.0.1:$port: $!";

    my $pid = fork() // die "fork: $!";

    if ($pid) {
        close $ls;
        push @children, $pid;
        return $pid;
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

                syswrite($s, $answers->{$path}
                             // "HTTP/1.1 500 No Script\r\n"
                                . "Content-Length: 0\r\n\r\n");
            }
        }
    }
}

# "CONN PATH" lines the fake server logged
sub fake_log {
    my ($log) = @_;
    open my $fh, '<', $log or return ();
    return map { chomp; [ split / /, $_, 2 ] } <$fh>;
}

# the connection number of the last request for $path in the fake log
sub fake_conn {
    my ($log, $path) = @_;
    my @hits = grep { $_->[1] eq $path } fake_log($log);
    return @hits ? $hits[-1][0] : undef;
}

# A second simulator process for DNS (the harness's sim_start has no --dns):
# both ports are picked by the simulator and read from its stderr.
sub dns_sim_start {
    my $out = $t->testdir . '/dns-sim.log';
    my @cmd = ($ENV{MPNS_SIMULATOR} // "$MpnsTest::ROOT/util/mpns-simulator",
               '--listen', '127.0.0.1:0', '--dns', '127.0.0.1:0');

    my $pid = fork() // die "fork: $!";

    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec { $cmd[0] } @cmd or print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }

    push @children, $pid;

    my ($http, $dns);

    wait_for(sub {
        my $text = slurp($out);
        ($http) = $text =~ /listening on 127\.0\.0\.1:(\d+)/;
        ($dns) = $text =~ /answering DNS on 127\.0\.0\.1:(\d+)/;
        return $http && $dns;
    }, 10) or die "DNS simulator did not start:\n" . slurp($out);

    return ($http, $dns);
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or return '';
    local $/;
    return scalar <$fh>;
}

sub dns_stats {
    my ($port) = @_;
    return $t->http_get('/_sim/stats', port => $port)->{json};
}

sub stop_children {
    for my $pid (@children) {
        kill 'TERM', $pid;
    }
    for my $pid (@children) {
        wait_for(sub { waitpid($pid, WNOHANG) != 0 }, 5)
            or kill('KILL', $pid) && waitpid($pid, 0);
    }
    @children = ();
}

END { stop_children() if $$ == $main_pid }

###############################################################################

my $fake = $t->port('fake');
my $fake_log = $t->testdir . '/fake.log';

my %answers = (
    '/ok' => "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
             . "Content-Length: 0\r\n\r\n",
    '/bad-status' => "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    '/icy' => "ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
    '/no-colon' => "HTTP/1.1 200 OK\r\nX-NotificationStatus Received\r\n"
                   . "Content-Length: 0\r\n\r\n",
    '/big-header' => "HTTP/1.1 200 OK\r\n"
                     . join('', map { "X-Filler-$_: " . ('x' x 90) . "\r\n" }
                                    1 .. 50)
                     . "Content-Length: 0\r\n\r\n",
    '/body' => "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
               . "Content-Length: 5\r\n\r\nhello",
    '/chunked' => "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
                  . "Transfer-Encoding: chunked\r\n\r\n"
                  . "5\r\nhello\r\n0\r\n\r\n",
    '/http10' => "HTTP/1.0 200 OK\r\nX-NotificationStatus: Received\r\n"
                 . "Content-Length: 0\r\n\r\n",
    '/continue' => "HTTP/1.1 100 Continue\r\n\r\n"
                   . "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
                   . "Content-Length: 0\r\n\r\n",
    '/conn-close' => "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
                     . "Connection: close\r\nContent-Length: 0\r\n\r\n",
    '/no-length' => "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
                    . "\r\n",
    '/trailing' => "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
                   . "Content-Length: 0\r\n\r\nJUNK",
    '/long-body' => "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
                    . "Content-Length: 5\r\n\r\nhello, world",
);

cmp_ok(length $answers{'/big-header'}, '>', 5000, 'big header is 5 KB');

fake_server($fake, $fake_log, \%answers);

my ($dns_http, $dns_port) = dns_sim_start();

(my $conf = <<'EOF_CONF') =~ s/%%DNS_PORT%%/$dns_port/g;

%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    mpns_allowed_hosts ^127\.0\.0\.1$ \.test$;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /push {
            mpns_send;
            add_header X-Attempts $mpns_attempts always;
        }

        location = /push-rt300 {
            mpns_send;
            mpns_read_timeout 300ms;
        }

        location = /push-rt1s {
            mpns_send;
            mpns_read_timeout 1s;
        }

        location = /push-ct300 {
            mpns_send;
            mpns_connect_timeout 300ms;
        }

        location = /push-dns {
            mpns_send;
            resolver 127.0.0.1:%%DNS_PORT%% valid=30s ipv6=off;
        }
    }
}

EOF_CONF

my ($r, $reqs, $stats);

###############################################################################

# connection reuse

fresh_nginx($conf);

for my $i (1 .. 5) {
    $r = push_to($t->sim_url("/t/reuse-$i"));
    is(result($r), '200 delivered', "reuse: send $i delivered");
}

$stats = $t->sim_stats;
$reqs = $t->sim_requests;

is($stats->{accepted}, 1, 'reuse: 5 sequential sends use 1 connection');
is(join(',', map { $_->{conn} } @$reqs), '1,1,1,1,1',
   'reuse: every request on connection 1');
is($stats->{open}, 1, 'reuse: the idle connection stays open');
no_new_errors('reuse: no [error]');

# "Connection: close" from the simulator: the connection is not reused

mark_log();
$r = push_to($t->sim_url('/t/close-1'));
is(result($r), '200 delivered', 'close: answer delivered');

$r = push_to($t->sim_url('/t/after-close'));
is(result($r), '200 delivered', 'close: next send delivered');

$reqs = $t->sim_requests;
isnt($reqs->[-1]{conn}, $reqs->[-2]{conn},
     'close: next send on a new connection');
is($reqs->[-1]{status}, 200, 'close: next send answered at the first try');
is($t->sim_stats->{accepted}, 2, 'close: 2 connections in all');
no_new_errors('close: no [error]');

# two server addresses never share a connection

fresh_nginx($conf);

for my $i (1 .. 3) {
    is(result(push_to($t->sim_url("/t/a-$i"))), '200 delivered',
       "two ports: send $i to sim delivered");
    is(result(push_to("http://127.0.0.1:$sim2/t/b-$i")), '200 delivered',
       "two ports: send $i to sim2 delivered");
}

{
    $reqs = $t->sim_requests;

    my (%conns_of, %hosts_of);

    for my $q (@$reqs) {
        $conns_of{$q->{hdr}{host}}{$q->{conn}} = 1;
        $hosts_of{$q->{conn}}{$q->{hdr}{host}} = 1;
    }

    is(scalar @$reqs, 6, 'two ports: 6 requests recorded');
    is(join(',', sort keys %conns_of),
       join(',', sort "127.0.0.1:$sim", "127.0.0.1:$sim2"),
       'two ports: Host headers name both ports');
    is(scalar(keys %{$conns_of{"127.0.0.1:$sim"} // {}}), 1,
       'two ports: one connection to sim');
    is(scalar(keys %{$conns_of{"127.0.0.1:$sim2"} // {}}), 1,
       'two ports: one connection to sim2');
    ok(!grep({ keys %{$hosts_of{$_}} > 1 } keys %hosts_of),
       'two ports: no connection carried requests for both ports');
    is($t->sim_stats->{accepted}, 2, 'two ports: 2 connections');
}

no_new_errors('two ports: no [error]');

###############################################################################

# stale keep-alive connection: one retry on a new connection

fresh_nginx($conf);

$r = push_to($t->sim_url('/t/stale-1'));
is(result($r), '200 delivered', 'stale: first send delivered');

$r = push_to($t->sim_url('/t/stale-1'));
is(result($r), '200 delivered',
   'stale: send on a dropped connection delivered');
is($r->{json}{attempts}, 1, 'stale: retry not counted in attempts');
is($r->{headers}{'x-attempts'}, 1,
   'stale: retry not counted in $mpns_attempts');
is($r->{headers}{'x-notificationstatus'}, 'Received',
   'stale: MPNS status copied');

$reqs = $t->sim_requests;
is(join(' ', map { $_->{conn} . ':' . ($_->{status} // 'none') } @$reqs),
   '1:200 1:none 2:200',
   'stale: dropped on connection 1, answered on connection 2');
is($t->sim_stats->{accepted}, 2, 'stale: simulator accepted 2');
no_new_errors('stale: no [error]');

###############################################################################

# timeouts

mark_log();
$r = push_to($t->sim_url('/t/silent-1'), '/push-rt300');
is(result($r), '504 timeout', 'read timeout: 504 timeout');
is($r->{json}{status}, undef, 'read timeout: no MPNS status');
cmp_ok($r->{json}{time_ms}, '<', 5000, 'read timeout: 300ms, not 15s');
new_error_like(['mpns server timed out',
                ' while reading response from mpns server,',
                qq{mpns: "127.0.0.1:$sim"}],
               'read timeout: logged');

mark_log();
$r = push_to($t->sim_url('/t/slow200-1'), '/push-rt1s');
is(result($r), '200 delivered', 'slow answer within read timeout delivered');
no_new_errors('slow answer: no [error]');

# connect timeout: a listener with backlog 1 that never accepts.  Linux
# queues backlog + 1 = 2 finished handshakes; with the queue full it drops
# further SYNs (it does not answer them), so nginx's connect() stays in
# progress until mpns_connect_timeout.  The fillers connect non-blocking:
# the third one is itself left waiting.

{
    my $black = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Listen => 1,
                                      Proto => 'tcp')
        or die "cannot listen: $!";
    my $bport = $black->sockport;

    my @fill = map {
        IO::Socket::INET->new(PeerAddr => "127.0.0.1:$bport",
                              Proto => 'tcp', Blocking => 0)
    } 1 .. 3;

    sleep 0.2;

    mark_log();
    $r = push_to("http://127.0.0.1:$bport/x", '/push-ct300');
    is(result($r), '504 timeout', 'connect timeout: 504 timeout');
    is($r->{json}{status}, undef, 'connect timeout: no MPNS status');
    cmp_ok($r->{json}{time_ms} // 0, '>=', 250,
           'connect timeout: waited for the timeout');
    new_error_like(['mpns server timed out',
                    ' while connecting to mpns server,',
                    qq{mpns: "127.0.0.1:$bport"}],
                   'connect timeout: logged');

    close $_ for grep { defined } @fill;
    close $black;
}

###############################################################################

# servers that answer badly

fresh_nginx($conf);

for my $case (['/bad-status', 'status line "HTTP/1.1 2000 OK"',
               'mpns server sent invalid status line'],
              ['/icy', 'status line "ICY 200 OK"',
               'mpns server sent invalid status line'],
              ['/no-colon', 'header line without colon',
               'mpns server sent invalid header'],
              ['/big-header', '5 KB of headers',
               'mpns server sent too big header'])
{
    my ($path, $what, $text) = @$case;

    mark_log();
    $r = push_to("http://127.0.0.1:$fake$path");
    is(result($r), '502 transport_error', "$what: 502 transport_error");
    is($r->{json}{status}, undef, "$what: no MPNS status reported");
    new_error_like(["$text while reading response from mpns server,",
                    qq{mpns: "127.0.0.1:$fake"}],
                   "$what: logged \"$text\"");
}

for my $case (['/body', 'Content-Length: 5 body', 1],
              ['/chunked', 'chunked body', 0],
              ['/http10', 'HTTP/1.0 answer', 0],
              ['/continue', '100 Continue first', 1],
              ['/conn-close', '"Connection: close" kept open by server', 0],
              ['/no-length', 'no Content-Length', 0],
              ['/trailing', 'bytes after the response', 0],
              ['/long-body', 'body longer than Content-Length', 0])
{
    my ($path, $what, $reuse) = @$case;

    mark_log();
    $r = push_to("http://127.0.0.1:$fake$path");
    is(result($r), '200 delivered', "$what: delivered");
    is($r->{headers}{'x-notificationstatus'}, 'Received',
       "$what: MPNS status copied");

    $r = push_to("http://127.0.0.1:$fake/ok");
    is(result($r), '200 delivered', "$what: next send delivered");

    my ($c1, $c2) = (fake_conn($fake_log, $path),
                     fake_conn($fake_log, '/ok'));

    if ($reuse) {
        is($c2, $c1, "$what: connection reused");
    } else {
        isnt($c2, $c1, "$what: connection not reused");
    }

    no_new_errors("$what: no [error]");
}

# on a reused connection: a response begun is an answer, no retry

is(result(push_to($t->sim_url('/t/pre-reset'))), '200 delivered',
   'reset mid-response: connection made');

mark_log();
$r = push_to($t->sim_url('/t/reset-1'));
is(result($r), '502 transport_error', 'reset mid-response: 502');
is($r->{json}{attempts}, 1, 'reset mid-response: attempts 1');

$reqs = $t->sim_requests;
is(join(' ', map { "$_->{conn}:$_->{target}" } @$reqs[-2, -1]),
   "$reqs->[-2]{conn}:/t/pre-reset $reqs->[-2]{conn}:/t/reset-1",
   'reset mid-response: sent on the reused connection');
is(scalar(grep { $_->{target} eq '/t/reset-1' } @$reqs), 1,
   'reset mid-response: not sent again');
is($r->{json}{status}, undef, 'reset mid-response: partial status dropped');
is($r->{headers}{'x-notificationstatus'}, undef,
   'reset mid-response: no MPNS header copied');
new_error_like(['mpns server prematurely closed connection while reading'
                . ' response from mpns server,', qq{mpns: "127.0.0.1:$sim"}],
               'reset mid-response: logged');

###############################################################################

# resolver

fresh_nginx($conf);
$t->http('POST', '/_sim/reset', port => $dns_http);

for my $i (1 .. 5) {
    $r = push_to("http://mpns.test:$sim/x", '/push-dns');
    is(result($r), '200 delivered', "resolver: send $i delivered");
}

$reqs = $t->sim_requests;
is($reqs->[0]{hdr}{host}, "mpns.test:$sim", 'resolver: Host from the URI');
is($reqs->[0]{target}, '/x', 'resolver: target from the URI');

is(result(push_to($t->sim_url('/t/literal'), '/push-dns')), '200 delivered',
   'resolver: IP literal delivered');

$stats = dns_stats($dns_http);
is($stats->{dns_queries}, 1, 'resolver: 5 sends, 1 DNS query');
is_deeply($stats->{dns_names}, { 'mpns.test' => 1 },
          'resolver: the query was for mpns.test, none for the IP literal');
no_new_errors('resolver: no [error]');

mark_log();
$r = push_to("http://nxdomain.test:$sim/x", '/push-dns');
is(result($r), '502 transport_error', 'resolver: NXDOMAIN is 502');
new_error_like(['nxdomain.test could not be resolved (3: Host not found)'],
               'resolver: NXDOMAIN logged');

mark_log();
$r = push_to("http://mpns.test:$sim/x", '/push');
is(result($r), '502 transport_error', 'no resolver: 502');
new_error_like(['no resolver defined to resolve mpns.test'],
               'no resolver: logged');

###############################################################################

# mpns_keepalive 0: a connection per send

(my $conf0 = $conf) =~ s/(mpns_allowed_hosts)/mpns_keepalive 0;\n    $1/;

fresh_nginx($conf0);

for my $i (1 .. 5) {
    is(result(push_to($t->sim_url("/t/k0-$i"))), '200 delivered',
       "keepalive 0: send $i delivered");
}

$reqs = $t->sim_requests;
is($t->sim_stats->{accepted}, 5, 'keepalive 0: 5 connections');
is(join(',', map { $_->{conn} } @$reqs), '1,2,3,4,5',
   'keepalive 0: one request per connection');
ok(wait_for(sub { $t->sim_stats->{open} == 0 }, 2),
   'keepalive 0: no connection left open');
no_new_errors('keepalive 0: no [error]');

# mpns_keepalive_timeout 200ms: an idle connection is closed

(my $conf_kt = $conf)
    =~ s/(mpns_allowed_hosts)/mpns_keepalive_timeout 200ms;\n    $1/;

fresh_nginx($conf_kt);

is(result(push_to($t->sim_url('/t/kt-1'))), '200 delivered',
   'keepalive timeout: first send delivered');
is($t->sim_stats->{open}, 1, 'keepalive timeout: connection idle');

sleep 0.5;

ok(wait_for(sub { $t->sim_stats->{open} == 0 }, 1),
   'keepalive timeout: idle connection closed');

is(result(push_to($t->sim_url('/t/kt-2'))), '200 delivered',
   'keepalive timeout: next send delivered');
is($t->sim_stats->{accepted}, 2, 'keepalive timeout: on a new connection');
no_new_errors('keepalive timeout: no [error]');

# mpns_keepalive 1: the least recently used idle connection makes room

(my $conf1 = $conf) =~ s/(mpns_allowed_hosts)/mpns_keepalive 1;\n    $1/;

fresh_nginx($conf1);

is(result(push_to($t->sim_url('/t/lru-1'))), '200 delivered',
   'keepalive 1: send to sim delivered');
is(result(push_to("http://127.0.0.1:$sim2/t/lru-2")), '200 delivered',
   'keepalive 1: send to sim2 delivered');
ok(wait_for(sub { $t->sim_stats->{open} == 1 }, 2),
   'keepalive 1: the older idle connection closed');
is(result(push_to("http://127.0.0.1:$sim2/t/lru-3")), '200 delivered',
   'keepalive 1: send to sim2 again delivered');

$reqs = $t->sim_requests;
is(join(',', map { $_->{conn} } @$reqs), '1,2,2',
   'keepalive 1: the newer connection reused');
is($t->sim_stats->{accepted}, 2, 'keepalive 1: 2 connections');
no_new_errors('keepalive 1: no [error]');

###############################################################################

stop_children();

$t->done;
done_testing;
