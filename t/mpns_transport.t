#!/usr/bin/perl

# Transport behaviour of mpns_send (docs/directives.md, docs/api.md):
# connection reuse and its limits, the one retry on a stale keep-alive
# connection, connect/read timeouts, the deadline of a whole exchange
# (mpns_response_timeout), a closed port and a filtered one answered
# alike, servers that answer badly, and names resolved through nginx's
# resolver.

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep);

use lib 't/lib';
use MpnsTest qw(http_conf result);

my $t = MpnsTest->new;

$t->sim_start(second => 1, dns => 1);

my $sim = $t->sim_port;
my $sim2 = $t->port('sim2');

###############################################################################

# helpers

# a toast to $channel through $location (default /push)
sub push_to { $t->push_toast($_[0], uri => $_[1]) }

sub no_new_errors {
    my ($name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(join("\n", $t->log_since('error')), '', $name);
}

# one [error] line since the mark has the literal @$parts in this order
sub new_error_like {
    my ($parts, $name) = @_;
    my $re = join '.*', map { quotemeta } @$parts;
    $re = qr/\[error\] .*$re/;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok(scalar $t->log_since($re), $name)
        or diag("[error] lines since mark:\n"
                . join("\n", $t->log_since('error')));
}

###############################################################################

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

    # 8 pieces 300 ms apart: each read well within a read timeout of 1 s,
    # the whole answer in 2.4 s
    '/drip' => { delay => 0.3, chunks => [ unpack '(a9)*',
                 "HTTP/1.1 200 OK\r\nX-NotificationStatus: Received\r\n"
                 . "Content-Length: 0\r\n\r\n" ] },

    # names in any case, and names of the same length that differ in a
    # byte of their first eight, of the next eight or of the rest
    '/names' => "HTTP/1.1 200 OK\r\nX-NOTIFICATIONSTATUS: Received\r\n"
                . "X-NotificatiomStatus: Dropped\r\n"
                . "x-subscriptionStatuz: Expired\r\n"
                . "X-SubscriptionStatus: Active\r\n"
                . "Y-DeviceConnectionStatus: Connected\r\n"
                . "X-DeviceConnectionStatux: Connected\r\n"
                . "X-DeviceConnectiomStatus: Connected\r\n"
                . "Content-Lengtx: 9\r\nCONTENT-LENGTH: 0\r\n\r\n",

    # every byte in its own write: lines and CR LF split anywhere
    '/dribble' => [ split //, "HTTP/1.1 200 OK\r\nServer: x\r\n"
                    . "X-NotificationStatus: QueueFull\r\n"
                    . "X-SubscriptionStatus:\tActive  \r\n"
                    . "x-deviceconnectionstatus: TempDisconnected\r\n"
                    . "Content-Length: 3\r\n\r\nabc" ],
);

cmp_ok(length $answers{'/big-header'}, '>', 5000, 'big header is 5 KB');

my $fake = $t->fake_server(\%answers);

my $conf = http_conf(<<'EOF_CONF');

    mpns_allowed_hosts ^127\.0\.0\.1$ \.test$;
    mpns_retries 0;    # retries: t/mpns_retries.t

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

        location = /push-deadline {
            mpns_send;
            mpns_connect_timeout 5s;
            mpns_read_timeout 1s;
            mpns_response_timeout 1500ms;
        }

        location = /push-no-deadline {
            mpns_send;
            mpns_read_timeout 1s;
            mpns_response_timeout 0;
        }

        location = /push-dns {
            mpns_send;
            resolver 127.0.0.1:%%DNS_PORT%% valid=30s ipv6=off;
        }
    }

EOF_CONF

my ($r, $reqs, $stats);

###############################################################################

# connection reuse

$t->restart($conf);

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

$t->log_mark;
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

$t->restart($conf);

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

$t->restart($conf);

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

$t->log_mark;
$r = push_to($t->sim_url('/t/silent-1'), '/push-rt300');
is(result($r), '504 timeout', 'read timeout: 504 timeout');
is($r->{json}{status}, undef, 'read timeout: no MPNS status');
cmp_ok($r->{json}{time_ms}, '<', 5000, 'read timeout: 300ms, not 15s');
new_error_like(['mpns server timed out',
                ' while reading response from mpns server,',
                qq{mpns: "127.0.0.1:$sim"}],
               'read timeout: logged');

$t->log_mark;
$r = push_to($t->sim_url('/t/slow200-1'), '/push-rt1s');
is(result($r), '200 delivered', 'slow answer within read timeout delivered');
no_new_errors('slow answer: no [error]');

# connect timeout: a listener that drops the SYN (see blackhole in the
# harness), so nginx's connect() stays in progress until
# mpns_connect_timeout

{
    my $black = $t->blackhole;
    my $bport = $black->port;

    $t->log_mark;
    $r = push_to("http://127.0.0.1:$bport/x", '/push-ct300');
    is(result($r), '502 transport_error',
       'connect timeout: 502 transport_error, as a refused connection');
    is($r->{json}{status}, undef, 'connect timeout: no MPNS status');
    cmp_ok($r->{json}{time_ms} // 0, '>=', 250,
           'connect timeout: waited for the timeout');
    new_error_like(['mpns server timed out',
                    ' while connecting to mpns server,',
                    qq{mpns: "127.0.0.1:$bport"}],
                   'connect timeout: logged');

    # what a caller learns of a port: a closed one (connection refused)
    # and a filtered one (no answer) end alike

    my $closed = $t->port('closed');
    my $refused = push_to("http://127.0.0.1:$closed/x", '/push-ct300');
    my $filtered = push_to("http://127.0.0.1:$bport/x", '/push-ct300');

    my @keys = qw(status notification_status subscription_status
                  device_connection_status outcome action retry_after
                  attempts);

    is(result($refused), result($filtered),
       'closed and filtered port: the same status and outcome');
    is_deeply([@{$refused->{json} // {}}{@keys}],
              [@{$filtered->{json} // {}}{@keys}],
              'closed and filtered port: the same answer but the time');
    is_deeply([sort keys %{$refused->{headers}}],
              [sort keys %{$filtered->{headers}}],
              'closed and filtered port: the same headers');

    # mpns_response_timeout before the connection is made: the same again

    $t->log_mark;
    $r = push_to("http://127.0.0.1:$bport/x", '/push-deadline');
    is(result($r), '502 transport_error',
       'deadline while connecting: 502 transport_error');
    cmp_ok($r->{json}{time_ms} // 0, '>=', 1400,
           'deadline while connecting: waited for the deadline');
    cmp_ok($r->{json}{time_ms} // 0, '<', 4000,
           'deadline while connecting: not for mpns_connect_timeout');
    new_error_like(['mpns server response timed out',
                    ' while connecting to mpns server,',
                    qq{mpns: "127.0.0.1:$bport"}],
                   'deadline while connecting: logged');

    $black->close;
}

# mpns_response_timeout: a server that sends a piece of its answer every
# 300 ms keeps within a read timeout of 1 s, and is cut off at 1.5 s

$t->log_mark;
$r = push_to("http://127.0.0.1:$fake/drip", '/push-deadline');
is(result($r), '504 timeout', 'dripping server: 504 timeout at the deadline');
is($r->{json}{status}, undef, 'dripping server: no MPNS status');
cmp_ok($r->{json}{time_ms} // 0, '>=', 1400,
       'dripping server: held until the deadline');
cmp_ok($r->{json}{time_ms} // 0, '<', 2300,
       'dripping server: not until the answer ended');
new_error_like(['mpns server response timed out',
                ' while reading response from mpns server,',
                qq{mpns: "127.0.0.1:$fake"}],
               'dripping server: logged');

# the same answer without a deadline takes its 2.4 s

$t->log_mark;
$r = push_to("http://127.0.0.1:$fake/drip", '/push-no-deadline');
is(result($r), '200 delivered', 'no deadline: the dripped answer delivered');
cmp_ok($r->{json}{time_ms} // 0, '>=', 2000,
       'no deadline: it took its time');
no_new_errors('no deadline: no [error]');

###############################################################################

# servers that answer badly

$t->restart($conf);

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

    $t->log_mark;
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

    $t->log_mark;
    $r = push_to("http://127.0.0.1:$fake$path");
    is(result($r), '200 delivered', "$what: delivered");
    is($r->{headers}{'x-notificationstatus'}, 'Received',
       "$what: MPNS status copied");

    $r = push_to("http://127.0.0.1:$fake/ok");
    is(result($r), '200 delivered', "$what: next send delivered");

    my ($c1, $c2) = ($t->fake_conn($path), $t->fake_conn('/ok'));

    if ($reuse) {
        is($c2, $c1, "$what: connection reused");
    } else {
        isnt($c2, $c1, "$what: connection not reused");
    }

    no_new_errors("$what: no [error]");
}

# a response written one byte at a time

$t->log_mark;
$r = push_to("http://127.0.0.1:$fake/dribble");
is(result($r), '200 queue_full', 'byte by byte: 200 queue_full');
is(join('|', map { $r->{json}{$_} } qw/notification_status
    subscription_status device_connection_status/),
   'QueueFull|Active|TempDisconnected',
   'byte by byte: statuses trimmed, names matched in any case');
is(result(push_to("http://127.0.0.1:$fake/ok")), '200 delivered',
   'byte by byte: next send delivered');
is($t->fake_conn('/ok'), $t->fake_conn('/dribble'),
   'byte by byte: body discarded, connection reused');
no_new_errors('byte by byte: no [error]');

# header names: any case, and only the names themselves

$t->log_mark;
$r = push_to("http://127.0.0.1:$fake/names");
is(result($r), '200 delivered', 'names in any case: 200 delivered');
is(join('|', map { $r->{json}{$_} // 'null' } qw/notification_status
    subscription_status device_connection_status/),
   'Received|Active|null', 'names in any case: near misses ignored');
no_new_errors('names in any case: no [error]');

# on a reused connection: a response begun is an answer, no retry

is(result(push_to($t->sim_url('/t/pre-reset'))), '200 delivered',
   'reset mid-response: connection made');

$t->log_mark;
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

# resolver: the simulator's DNS (resolver in /push-dns) answers every
# name with 127.0.0.1

$t->restart($conf);

for my $i (1 .. 5) {
    $r = push_to("http://mpns.test:$sim/x", '/push-dns');
    is(result($r), '200 delivered', "resolver: send $i delivered");
}

$reqs = $t->sim_requests;
is($reqs->[0]{hdr}{host}, "mpns.test:$sim", 'resolver: Host from the URI');
is($reqs->[0]{target}, '/x', 'resolver: target from the URI');

is(result(push_to($t->sim_url('/t/literal'), '/push-dns')), '200 delivered',
   'resolver: IP literal delivered');

$stats = $t->sim_stats;
is($stats->{dns_queries}, 1, 'resolver: 5 sends, 1 DNS query');
is_deeply($stats->{dns_names}, { 'mpns.test' => 1 },
          'resolver: the query was for mpns.test, none for the IP literal');
no_new_errors('resolver: no [error]');

$t->log_mark;
$r = push_to("http://nxdomain.test:$sim/x", '/push-dns');
is(result($r), '502 transport_error', 'resolver: NXDOMAIN is 502');
new_error_like(['nxdomain.test could not be resolved (3: Host not found)'],
               'resolver: NXDOMAIN logged');

$t->log_mark;
$r = push_to("http://mpns.test:$sim/x", '/push');
is(result($r), '502 transport_error', 'no resolver: 502');
new_error_like(['no resolver defined to resolve mpns.test'],
               'no resolver: logged');

###############################################################################

# mpns_keepalive 0: a connection per send

(my $conf0 = $conf) =~ s/(mpns_allowed_hosts)/mpns_keepalive 0;\n    $1/;

$t->restart($conf0);

for my $i (1 .. 5) {
    is(result(push_to($t->sim_url("/t/k0-$i"))), '200 delivered',
       "keepalive 0: send $i delivered");
}

$reqs = $t->sim_requests;
is($t->sim_stats->{accepted}, 5, 'keepalive 0: 5 connections');
is(join(',', map { $_->{conn} } @$reqs), '1,2,3,4,5',
   'keepalive 0: one request per connection');
ok($t->wait_for(sub { $t->sim_stats->{open} == 0 }, 2),
   'keepalive 0: no connection left open');
no_new_errors('keepalive 0: no [error]');

# mpns_keepalive_timeout 200ms: an idle connection is closed

(my $conf_kt = $conf)
    =~ s/(mpns_allowed_hosts)/mpns_keepalive_timeout 200ms;\n    $1/;

$t->restart($conf_kt);

is(result(push_to($t->sim_url('/t/kt-1'))), '200 delivered',
   'keepalive timeout: first send delivered');
is($t->sim_stats->{open}, 1, 'keepalive timeout: connection idle');

sleep 0.5;

ok($t->wait_for(sub { $t->sim_stats->{open} == 0 }, 1),
   'keepalive timeout: idle connection closed');

is(result(push_to($t->sim_url('/t/kt-2'))), '200 delivered',
   'keepalive timeout: next send delivered');
is($t->sim_stats->{accepted}, 2, 'keepalive timeout: on a new connection');
no_new_errors('keepalive timeout: no [error]');

# mpns_keepalive 1: the least recently used idle connection makes room

(my $conf1 = $conf) =~ s/(mpns_allowed_hosts)/mpns_keepalive 1;\n    $1/;

$t->restart($conf1);

is(result(push_to($t->sim_url('/t/lru-1'))), '200 delivered',
   'keepalive 1: send to sim delivered');
is(result(push_to("http://127.0.0.1:$sim2/t/lru-2")), '200 delivered',
   'keepalive 1: send to sim2 delivered');
ok($t->wait_for(sub { $t->sim_stats->{open} == 1 }, 2),
   'keepalive 1: the older idle connection closed');
is(result(push_to("http://127.0.0.1:$sim2/t/lru-3")), '200 delivered',
   'keepalive 1: send to sim2 again delivered');

$reqs = $t->sim_requests;
is(join(',', map { $_->{conn} } @$reqs), '1,2,2',
   'keepalive 1: the newer connection reused');
is($t->sim_stats->{accepted}, 2, 'keepalive 1: 2 connections');
no_new_errors('keepalive 1: no [error]');

###############################################################################

$t->done;
done_testing;
