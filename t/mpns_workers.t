#!/usr/bin/perl

# mpns_send and the worker processes: several workers sending at once, a
# reload with a send in flight (the old worker finishes it, then exits even
# with idle connections cached), and clients that go away mid-send or
# mid-resolution (the send is cancelled, nothing leaks, the worker lives).

use strict;
use warnings;

use Test::More;

use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

use lib 't/lib';
use MpnsTest qw(http_conf result slurp);

my $t = MpnsTest->new;

$t->sim_start(second => 1);

my $sim = $t->sim_port;
my $sim2 = $t->port('sim2');

###############################################################################

# helpers

# a toast to $channel through $location (default /push)
sub push_to { $t->push_toast($_[0], uri => $_[1]) }

# starts that send and returns the client socket without reading
sub push_start { $t->push_toast_start($_[0], uri => $_[1]) }

# TCP sockets of process $pid connected or connecting to 127.0.0.1:$port
sub sockets_to {
    my ($pid, $port) = @_;

    my %mine;
    for my $fd (glob "/proc/$pid/fd/*") {
        my $l = readlink($fd) // next;
        $mine{$1} = 1 if $l =~ /^socket:\[(\d+)\]/;
    }

    my $n = 0;
    for my $line (split /\n/, slurp('/proc/net/tcp')) {
        my @f = split ' ', $line;
        next if @f < 10 || $f[2] ne sprintf('0100007F:%04X', $port);
        $n++ if $mine{$f[9]};
    }

    return $n;
}

# access.log has a line matching $re within $secs
sub access_logged {
    my ($re, $secs) = @_;
    return $t->wait_for(sub { grep { $_ =~ $re } $t->access_log_lines },
                        $secs);
}

###############################################################################

# a UDP "resolver" that never answers
my $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                Proto => 'udp')
    or die "cannot bind udp: $!";
my $udp_port = $udp->sockport;

(my $conf = http_conf(<<'EOF_CONF')) =~ s/%%UDP_PORT%%/$udp_port/g;

    mpns_allowed_hosts ^127\.0\.0\.1$ \.test$;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /push {
            mpns_send;
        }

        location = /push-rt10 {
            mpns_send;
            mpns_read_timeout 10s;
        }

        location = /push-ct10 {
            mpns_send;
            mpns_connect_timeout 10s;
        }

        location = /push-nodns {
            mpns_send;
            resolver 127.0.0.1:%%UDP_PORT%% ipv6=off;
            resolver_timeout 5s;
        }
    }

EOF_CONF

my ($r, $stats);

###############################################################################

# two workers, 4 client connections sending in parallel

$t->restart("worker_processes 2;\n$conf");

is(scalar(my @w = $t->worker_pids), 2, 'two workers: 2 worker pids');

{
    my @socks = map { $t->http_connect } 1 .. 4;

    my @results;

    for my $round (1 .. 5) {
        for my $i (0 .. $#socks) {
            $t->push_toast_start($t->sim_url("/t/par-$i-$round"),
                                 socket => $socks[$i], keepalive => 1);
        }

        push @results, map { result($t->http_response($_)) } @socks;
    }

    close $_ for @socks;

    is(scalar(grep { $_ eq '200 delivered' } @results), 20,
       'two workers: 20 parallel sends delivered')
        or diag(join "\n", @results);
}

{
    my $reqs = $t->sim_requests;
    my %targets = map { $_->{target} => 1 } @$reqs;
    my %ids = map { $_->{hdr}{'x-messageid'} => 1 } @$reqs;

    is(scalar @$reqs, 20, 'two workers: simulator got 20 requests');
    is(scalar keys %targets, 20, 'two workers: each send once');
    is(scalar keys %ids, 20, 'two workers: 20 distinct message ids');
}

is(join("\n", $t->log_since(qr/\[(error|alert|crit|emerg)\]/)), '',
   'two workers: no errors');

###############################################################################

# reload while a send is in flight

$t->restart($conf);

# the old worker keeps an idle connection to the second listener

is(result(push_to("http://127.0.0.1:$sim2/t/idle-1")), '200 delivered',
   'reload: idle connection made');

{
    my ($old) = $t->worker_pids;

    my $s = push_start($t->sim_url('/t/slow1500-1'));

    ok($t->wait_for(sub { $t->sim_stats->{requests} == 2 }, 5),
       'reload: slow send reached the simulator');

    sleep 0.3;
    ok(!IO::Select->new($s)->can_read(0), 'reload: send still in flight');

    my $t0 = time;

    $t->reload(wait_old => 0);

    my ($new) = grep { $_ != $old } $t->worker_pids;

    $r = $t->http_finish($s);
    is(result($r), '200 delivered', 'reload: in-flight send delivered');

    is(result(push_to($t->sim_url('/t/after-reload'))), '200 delivered',
       'reload: send after the reload delivered');

    ok($t->wait_for(sub { !$t->alive($old) }, 5), 'reload: old worker exited');
    ok(time - $t0 < 5 * $t->timeout_factor,
       'reload: old worker exited within a few seconds');

    isnt($new // '', $old, 'reload: a new worker');
    ok($t->alive($new), 'reload: new worker alive');

    # left: the new worker's idle connection at most (the send after the
    # reload may still have been taken by the old worker, under valgrind)
    ok($t->wait_for(sub { $t->sim_stats->{open} <= 1 }, 2),
       'reload: old worker closed its connections')
        or diag(explain $t->sim_stats);

    my $reqs = $t->sim_requests;
    is($reqs->[-1]{status}, 200, 'reload: last send answered');
}

is(join("\n", $t->log_since(qr/\[(error|alert|crit|emerg)\]/)), '',
   'reload: no errors');

###############################################################################

# client goes away mid-send

$t->restart($conf);

my ($worker) = $t->worker_pids;

{
    my $s = push_start($t->sim_url('/t/silent-1'), '/push-rt10');
    $t->wait_for(sub { $t->sim_stats->{open} == 1 }, 0.3);
    is($t->sim_stats->{open}, 1, 'disconnect: send in flight');
    close $s;

    ok($t->wait_for(sub { $t->sim_stats->{open} == 0 }, 1),
       'disconnect: mpns connection closed within 1s');
    ok(access_logged(qr{"POST /push-rt10 HTTP/1.1" 499 }, 1),
       'disconnect: 499 logged');
}

is(result(push_to($t->sim_url('/t/next-1'))), '200 delivered',
   'disconnect: next send delivered');
is(join(' ', $t->worker_pids), $worker, 'disconnect: same worker');

{
    my $closed = 0;

    for my $i (1 .. 20) {
        my $n = $t->sim_stats->{requests};
        my $s = push_start($t->sim_url("/t/silent-r$i"), '/push-rt10');

        $t->wait_for(sub { $t->sim_stats->{requests} > $n }, 5)
            or diag("disconnect $i: send did not reach the simulator");
        close $s;

        $closed++ if $t->wait_for(sub { $t->sim_stats->{open} == 0 }, 2);
    }

    is($closed, 20, 'disconnect x20: every mpns connection closed');
    is($t->sim_stats->{open}, 0, 'disconnect x20: nothing left open');

    my @l = grep { m{"POST /push-rt10 HTTP/1.1" 499 } }
            $t->access_log_lines;
    is(scalar @l, 21, 'disconnect x20: 499 logged for each');
}

is(result(push_to($t->sim_url('/t/next-2'))), '200 delivered',
   'disconnect x20: next send delivered');
is(join(' ', $t->worker_pids), $worker, 'disconnect x20: same worker');

# client goes away while nginx is still connecting: a listener that
# drops the SYN (see blackhole in the harness)

{
    my $black = $t->blackhole;
    my $bport = $black->port;

    $t->log_mark;

    my $s = push_start("http://127.0.0.1:$bport/x", '/push-ct10');

    ok($t->wait_for(sub { sockets_to($worker, $bport) == 1 }, 5),
       'disconnect while connecting: worker is connecting');

    sleep 0.3;
    close $s;

    ok($t->wait_for(sub { sockets_to($worker, $bport) == 0 }, 1),
       'disconnect while connecting: connecting socket closed');

    ok(access_logged(qr{"POST /push-ct10 HTTP/1.1" 499 }, 1),
       'disconnect while connecting: 499 logged');

    $black->close;
}

is(result(push_to($t->sim_url('/t/next-c'))), '200 delivered',
   'disconnect while connecting: next send delivered');
is(join(' ', $t->worker_pids), $worker,
   'disconnect while connecting: same worker');
is(join("\n", $t->log_since(qr/\[(error|alert|crit|emerg)\]/)), '',
   'disconnect while connecting: no errors');

# client goes away while the name is being resolved

$t->log_mark;

{
    my $s = push_start("http://mpns.test:$sim/x", '/push-nodns');

    my $sel = IO::Select->new($udp);
    my $q = '';
    $udp->recv($q, 512) if $sel->can_read(5 * $t->timeout_factor);
    ok(length $q, 'disconnect in resolution: query sent to the resolver');

    sleep 0.2;
    close $s;

    ok(access_logged(qr{"POST /push-nodns HTTP/1.1" 499 }, 1),
       'disconnect in resolution: 499 logged');
}

is(result(push_to($t->sim_url('/t/next-3'))), '200 delivered',
   'disconnect in resolution: next send delivered');
is(join(' ', $t->worker_pids), $worker,
   'disconnect in resolution: same worker');
is(join("\n", $t->log_since(qr/\[(error|alert|crit|emerg)\]/)), '',
   'disconnect in resolution: no errors');

###############################################################################

# worker_shutdown_timeout ends a send that would outlive the old worker:
# the worker exits, the MPNS connection is closed, nothing is left behind
# (an "open socket ... left in connection" [alert] fails "no alerts")

$t->restart("worker_shutdown_timeout 500ms;\n$conf");

{
    my ($old) = $t->worker_pids;

    is(result(push_to($t->sim_url('/t/idle-2'))), '200 delivered',
       'shutdown timeout: idle connection made');

    my $s = push_start("http://127.0.0.1:$sim2/t/silent-w", '/push-rt10');

    ok($t->wait_for(sub { $t->sim_stats->{requests} == 2 }, 5),
       'shutdown timeout: send in flight');

    my $t0 = time;
    $t->reload(wait_old => 0);

    ok($t->wait_for(sub { !$t->alive($old) }, 3),
       'shutdown timeout: old worker exited');
    cmp_ok(time - $t0, '<', 3 * $t->timeout_factor,
           'shutdown timeout: exited within a few seconds');
    ok($t->wait_for(sub { $t->sim_stats->{open} == 0 }, 2),
       'shutdown timeout: mpns connections closed');

    $r = $t->http_finish($s, timeout => 3);
    ok(($r->{error} // '') ne 'timeout',
       'shutdown timeout: client connection closed');
    note("client got: " . ($r->{raw} =~ /^(.*)/ ? $1 : '(nothing)'));
}

is(result(push_to($t->sim_url('/t/next-4'))), '200 delivered',
   'shutdown timeout: send after the reload delivered');

{
    my $t0 = time;
    $t->stop;
    cmp_ok(time - $t0, '<', 5 * $t->timeout_factor, 'nginx stops promptly');
}

###############################################################################

$t->done;
done_testing;
