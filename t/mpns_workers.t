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
use JSON::PP;
use Time::HiRes qw(sleep time);

use lib 't/lib';
use MpnsTest;

my $t = MpnsTest->new;

$t->sim_start(second => 1);

my $sim = $t->sim_port;
my $sim2 = $t->port('sim2');

###############################################################################

# helpers

sub toast {
    my ($channel) = @_;
    return JSON::PP->new->canonical->encode({ channel => $channel,
                                              type => 'toast',
                                              text1 => 'Hi' });
}

sub push_to {
    my ($channel, $location) = @_;
    return $t->post_json($location // '/push', toast($channel));
}

# starts a send and returns the client socket without reading
sub push_start {
    my ($channel, $location) = @_;
    my $body = toast($channel);
    return $t->http_start('POST', $location // '/push', body => $body,
                          headers => ['Content-Type' => 'application/json']);
}

# "STATUS OUTCOME" of an answer
sub result {
    my ($r) = @_;
    return ($r->{status} // 'none') . ' '
           . ($r->{json} ? $r->{json}{outcome} // 'none' : 'no-json');
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

sub alive {
    my ($pid) = @_;
    return 0 if !kill 0, $pid;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my ($state) = <$fh> =~ /\) (\S)/;
    return ($state // 'Z') ne 'Z';
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or return '';
    local $/;
    return scalar <$fh>;
}

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

# reads one response (Content-Length delimited) from a keep-alive socket
sub read_response {
    my ($s) = @_;

    my $raw = '';
    my $sel = IO::Select->new($s);
    my $end = time + 10 * $t->timeout_factor;

    while (1) {
        if ($raw =~ /\r\n\r\n/) {
            my $hlen = $+[0];
            my ($len) = substr($raw, 0, $hlen) =~ /^Content-Length:\s*(\d+)/mi;
            last if defined $len && length($raw) >= $hlen + $len;
        }

        my $left = $end - time;
        last if $left <= 0 || !$sel->can_read($left);
        last if !$s->sysread($raw, 65536, length $raw);
    }

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d{3})};

    return { status => $status,
             json => eval { JSON::PP->new->utf8->decode($body // '') } };
}

# reads the answer of a socket from push_start
sub read_all {
    my ($s) = @_;
    my $r = read_response($s);
    close $s;
    return $r;
}

my $log_mark = 0;

sub mark_log { $log_mark = length $t->error_log }

sub new_lines {
    my ($re) = @_;
    return grep { $_ =~ $re } split /\n/, substr($t->error_log, $log_mark);
}

# (re)starts nginx; run returns once the master's listening socket
# accepts, which is before the workers are forked: wait for them too
sub fresh_nginx {
    my ($conf) = @_;
    my ($n) = $conf =~ /^\s*worker_processes\s+(\d+);/m;
    $t->stop;
    $t->write_conf($conf);
    $t->run;
    wait_for(sub { scalar(my @w = $t->worker_pids) == ($n // 1) }, 10)
        or die "nginx did not start its workers";
    $t->sim_reset;
    mark_log();
}

###############################################################################

# a UDP "resolver" that never answers
my $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                Proto => 'udp')
    or die "cannot bind udp: $!";
my $udp_port = $udp->sockport;

(my $conf = <<'EOF_CONF') =~ s/%%UDP_PORT%%/$udp_port/g;

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
}

EOF_CONF

my ($r, $stats);

###############################################################################

# two workers, 4 client connections sending in parallel

fresh_nginx("worker_processes 2;\n$conf");

is(scalar(my @w = $t->worker_pids), 2, 'two workers: 2 worker pids');

{
    my @socks = map {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port('http'),
                              Proto => 'tcp')
            or die "connect: $!";
    } 1 .. 4;

    my @results;

    for my $round (1 .. 5) {
        for my $i (0 .. $#socks) {
            my $body = toast($t->sim_url("/t/par-$i-$round"));
            my $req = "POST /push HTTP/1.1\r\nHost: localhost\r\n"
                      . "Content-Type: application/json\r\n"
                      . "Content-Length: " . length($body) . "\r\n\r\n"
                      . $body;
            $socks[$i]->syswrite($req) == length $req or die "write: $!";
        }

        push @results, map { result(read_response($_)) } @socks;
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

is(join("\n", new_lines(qr/\[(error|alert|crit|emerg)\]/)), '',
   'two workers: no errors');

###############################################################################

# reload while a send is in flight

fresh_nginx($conf);

# the old worker keeps an idle connection to the second listener

is(result(push_to("http://127.0.0.1:$sim2/t/idle-1")), '200 delivered',
   'reload: idle connection made');

{
    my ($old) = $t->worker_pids;

    my $s = push_start($t->sim_url('/t/slow1500-1'));

    ok(wait_for(sub { $t->sim_stats->{requests} == 2 }, 5),
       'reload: slow send reached the simulator');

    sleep 0.3;
    ok(!IO::Select->new($s)->can_read(0), 'reload: send still in flight');

    my $t0 = time;

    $t->reload(wait_old => 0);

    my ($new) = grep { $_ != $old } $t->worker_pids;

    $r = read_all($s);
    is(result($r), '200 delivered', 'reload: in-flight send delivered');

    is(result(push_to($t->sim_url('/t/after-reload'))), '200 delivered',
       'reload: send after the reload delivered');

    ok(wait_for(sub { !alive($old) }, 5), 'reload: old worker exited');
    ok(time - $t0 < 5 * $t->timeout_factor,
       'reload: old worker exited within a few seconds');

    isnt($new // '', $old, 'reload: a new worker');
    ok(alive($new), 'reload: new worker alive');

    # left: the new worker's idle connection only
    ok(wait_for(sub { $t->sim_stats->{open} == 1 }, 2),
       'reload: old worker closed its connections')
        or diag(explain $t->sim_stats);

    my $reqs = $t->sim_requests;
    is($reqs->[-1]{status}, 200, 'reload: last send answered');
}

is(join("\n", new_lines(qr/\[(error|alert|crit|emerg)\]/)), '',
   'reload: no errors');

###############################################################################

# client goes away mid-send

fresh_nginx($conf);

my ($worker) = $t->worker_pids;
my $access = $t->testdir . '/access.log';

{
    my $s = push_start($t->sim_url('/t/silent-1'), '/push-rt10');
    sleep 0.3;
    is($t->sim_stats->{open}, 1, 'disconnect: send in flight');
    close $s;

    ok(wait_for(sub { $t->sim_stats->{open} == 0 }, 1),
       'disconnect: mpns connection closed within 1s');
    ok(wait_for(sub { slurp($access) =~ m{"POST /push-rt10 HTTP/1.1" 499 } },
                1),
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

        wait_for(sub { $t->sim_stats->{requests} > $n }, 5)
            or diag("disconnect $i: send did not reach the simulator");
        close $s;

        $closed++ if wait_for(sub { $t->sim_stats->{open} == 0 }, 2);
    }

    is($closed, 20, 'disconnect x20: every mpns connection closed');
    is($t->sim_stats->{open}, 0, 'disconnect x20: nothing left open');

    my @l = slurp($access) =~ m{"POST /push-rt10 HTTP/1.1" 499 }g;
    is(scalar @l, 21, 'disconnect x20: 499 logged for each');
}

is(result(push_to($t->sim_url('/t/next-2'))), '200 delivered',
   'disconnect x20: next send delivered');
is(join(' ', $t->worker_pids), $worker, 'disconnect x20: same worker');

# client goes away while nginx is still connecting: a listener with
# backlog 1 that never accepts and a full accept queue drops the SYN

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

    my $s = push_start("http://127.0.0.1:$bport/x", '/push-ct10');

    ok(wait_for(sub { sockets_to($worker, $bport) == 1 }, 5),
       'disconnect while connecting: worker is connecting');

    sleep 0.3;
    close $s;

    ok(wait_for(sub { sockets_to($worker, $bport) == 0 }, 1),
       'disconnect while connecting: connecting socket closed');

    ok(wait_for(sub {
           slurp($access) =~ m{"POST /push-ct10 HTTP/1.1" 499 } }, 1),
       'disconnect while connecting: 499 logged');

    close $_ for grep { defined } @fill;
    close $black;
}

is(result(push_to($t->sim_url('/t/next-c'))), '200 delivered',
   'disconnect while connecting: next send delivered');
is(join(' ', $t->worker_pids), $worker,
   'disconnect while connecting: same worker');
is(join("\n", new_lines(qr/\[(error|alert|crit|emerg)\]/)), '',
   'disconnect while connecting: no errors');

# client goes away while the name is being resolved

mark_log();

{
    my $s = push_start("http://mpns.test:$sim/x", '/push-nodns');

    my $sel = IO::Select->new($udp);
    my $q = '';
    $udp->recv($q, 512) if $sel->can_read(5 * $t->timeout_factor);
    ok(length $q, 'disconnect in resolution: query sent to the resolver');

    sleep 0.2;
    close $s;

    ok(wait_for(sub {
           slurp($access) =~ m{"POST /push-nodns HTTP/1.1" 499 } }, 1),
       'disconnect in resolution: 499 logged');
}

is(result(push_to($t->sim_url('/t/next-3'))), '200 delivered',
   'disconnect in resolution: next send delivered');
is(join(' ', $t->worker_pids), $worker,
   'disconnect in resolution: same worker');
is(join("\n", new_lines(qr/\[(error|alert|crit|emerg)\]/)), '',
   'disconnect in resolution: no errors');

###############################################################################

# worker_shutdown_timeout ends a send that would outlive the old worker:
# the worker exits, the MPNS connection is closed, nothing is left behind
# (an "open socket ... left in connection" [alert] fails "no alerts")

fresh_nginx("worker_shutdown_timeout 500ms;\n$conf");

{
    my ($old) = $t->worker_pids;

    is(result(push_to($t->sim_url('/t/idle-2'))), '200 delivered',
       'shutdown timeout: idle connection made');

    my $s = push_start("http://127.0.0.1:$sim2/t/silent-w", '/push-rt10');

    ok(wait_for(sub { $t->sim_stats->{requests} == 2 }, 5),
       'shutdown timeout: send in flight');

    my $t0 = time;
    $t->reload(wait_old => 0);

    ok(wait_for(sub { !alive($old) }, 3),
       'shutdown timeout: old worker exited');
    cmp_ok(time - $t0, '<', 3 * $t->timeout_factor,
           'shutdown timeout: exited within a few seconds');
    ok(wait_for(sub { $t->sim_stats->{open} == 0 }, 2),
       'shutdown timeout: mpns connections closed');

    my $sel = IO::Select->new($s);
    my ($buf, $eof) = ('', 0);
    while ($sel->can_read(3 * $t->timeout_factor)) {
        my $n = $s->sysread($buf, 65536, length $buf);
        $eof = 1, last if !$n;
    }
    ok($eof, 'shutdown timeout: client connection closed');
    note("client got: " . ($buf =~ /^(.*)/ ? $1 : '(nothing)'));
    close $s;
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
