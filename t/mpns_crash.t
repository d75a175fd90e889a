#!/usr/bin/perl

# Crashes with traffic flowing (docs/design.md, "State files"): clients
# register channels and queue background sends while the workers, then the
# master and every worker are killed with SIGKILL at random moments, a few
# rounds.  After every restart each registration answered 201 and each send
# answered 202 is there; every send is made, and a send is made twice only
# if it was in flight at a crash: at most what the restarts log as in
# flight, and at most mpns_concurrency per worker and crash.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

use lib 't/lib';
use MpnsTest qw(http_conf slurp uri_escape);

my $ROUNDS = $ENV{TEST_MPNS_CRASH_ROUNDS} // 3;

# under valgrind nginx is some ten times slower: less traffic
my $CLIENTS = 3;
my $WORKERS = 2;
my $CONCURRENCY = 8;

my $t = MpnsTest->new;

my $slow = $t->timeout_factor > 1;

$t->sim_start;

my $dir = $t->testdir;
my $sim = $t->sim_port;

mkdir "$dir/state" or die "mkdir: $!";

# killed processes are logged by the master, and so is a zone lock one of
# them held: nginx releases it
$t->tolerate(qr/exited on signal 9/);
$t->tolerate(qr/shared memory zone "\w+" was locked by \d+/);

$t->write_conf(http_conf(<<"EOF") =~ s/^(%%TEST_GLOBALS%%)$/$1\nworker_processes $WORKERS;/mr);

    mpns_allowed_hosts ^127\\.0\\.0\\.1\$;

    mpns_registry_zone zone=reg:4m state=%%TESTDIR%%/state/reg.ndjson;
    mpns_outbox_zone zone=out:8m state=%%TESTDIR%%/state/out.ndjson;
    mpns_journal snapshot=1s;

    server {
        listen       127.0.0.1:%%PORT%% reuseport;
        server_name  localhost;

        location = /channels {
            mpns_registry reg;
        }

        location /bg {
            mpns_send toast;
            mpns_outbox out;
            mpns_mode background;
            mpns_concurrency $CONCURRENCY;
        }
    }

EOF

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

# a crash: SIGKILL to the workers, a pause, then to the master and to what
# it started meanwhile (workers left without a master come to this
# process, which MpnsTest made a subreaper)

sub crash {
    my ($pause) = @_;

    kill 'KILL', $t->worker_pids;
    sleep $pause;

    my @workers = $t->worker_pids;
    my $master = delete $t->{master};

    kill 'KILL', $master, @workers;
    $t->wait_for(sub { !$t->alive($master) }, 10);

    for my $stat (glob '/proc/[0-9]*/stat') {
        my ($pid, $ppid) = slurp($stat) =~ /^(\d+) \(.*\) \S (\d+)/s
            or next;
        kill 'KILL', $pid
            if $ppid == $$ && slurp("/proc/$pid/cmdline") =~ /^nginx: /;
    }
}

# a client: registrations and background sends, one after the other, each
# answer written down once it is read whole

sub client {
    my ($round, $k) = @_;

    my $pid = fork() // die "fork: $!";
    return $pid if $pid;

    open my $fh, '>>', "$dir/acks.$round.$k" or POSIX::_exit(1);
    $fh->autoflush(1);

    for (my $i = 1; ; $i++) {
        my $name = "r$round-$k-$i";

        my $r = eval { $t->post_json('/channels',
                                     { channel => ch($name),
                                       device => $name }) };
        print $fh "R $name\n" if $r && ($r->{status} // 0) == 201;

        $r = eval { $t->post_json('/bg', { channel => ch("active-b$name"),
                                           text1 => $name }) };
        print $fh "B $r->{json}{id} $r->{json}{message_id}\n"
            if $r && ($r->{status} // 0) == 202;

        sleep 0.05 if !$r;
    }
}

# the registry, { channel => 1 }, page by page

sub channels {
    my (%all, $after);

    for ( ;; ) {
        my $r = $t->http_get('/channels?limit=1000'
                             . (defined $after ? '&after=' . uri_escape($after)
                                               : ''));
        die "listing: $r->{status}" if $r->{status} != 200;

        $all{$_->{channel}} = 1 for @{$r->{json}{channels}};
        $after = $r->{json}{next} // last;
    }

    return \%all;
}

###############################################################################

my (%registered, %queued, $inflight);

$t->run;

for my $round (1 .. $ROUNDS) {

    my @clients = map { client($round, $_) } 1 .. $CLIENTS;

    # the crash comes at a random moment once changes are answered

    $t->wait_for(sub {
        my $acks = join '', map { slurp("$dir/acks.$round.$_") }
                                1 .. $CLIENTS;
        $acks =~ /^R /m && $acks =~ /^B /m;
    }, 10);

    sleep 0.8 + rand 1.5;
    crash(0.3 + rand 1.2);

    kill 'TERM', @clients;
    waitpid($_, 0) for @clients;

    my ($r, $b) = (0, 0);

    for my $k (1 .. $CLIENTS) {
        for (split /\n/, slurp("$dir/acks.$round.$k")) {
            if (/^R (\S+)$/) {
                $registered{ch($1)} = 1;
                $r++;

            } elsif (/^B ([0-9a-f]{16}) (\S{36})$/) {
                $queued{$1} = $2;
                $b++;
            }
        }
    }

    $t->log_mark;
    $t->run;

    my ($n) = map { /: (\d+) sends in flight when it stopped/ }
              $t->log_since('notice');
    $inflight += $n // 0;

    my $all = channels();
    my $lost = grep { !$all->{$_} } keys %registered;

    is($lost, 0, "round $round: $r registrations answered 201, "
                 . scalar(keys %registered) . ' so far, all there');

    $lost = grep { $t->http_get("/bg/$_")->{status} != 200 } keys %queued;

    is($lost, 0, "round $round: $b sends answered 202, "
                 . scalar(keys %queued) . ' so far, all there, '
                 . ($n // 0) . ' in flight at the crash');

    ok($r > ($slow ? 0 : 10) && $b > ($slow ? 0 : 10),
       "round $round: traffic flowed");
}

# every send made, some maybe twice

my %want = reverse %queued;
my %made;

ok($t->wait_for(sub {
    %made = ();

    for (@{$t->sim_requests}) {
        my $id = $_->{hdr}{'x-messageid'} // next;
        $made{$id}++ if $want{$id};
    }

    keys %made == keys %want;
}, 30), scalar(keys %want) . ' sends answered 202, each made');

my $twice = 0;
$twice += $_ - 1 for values %made;

cmp_ok($twice, '<=', $inflight,
       "$twice made more than once: no more than were in flight");
cmp_ok($inflight, '<=', $ROUNDS * 2 * $WORKERS * $CONCURRENCY,
       "$inflight in flight at the crashes: mpns_concurrency per worker "
       . 'and crash at most');

diag("$ROUNDS rounds: " . scalar(keys %registered) . ' registrations, '
     . scalar(keys %queued) . " sends, $inflight in flight at the crashes, "
     . "$twice made twice") if $ENV{TEST_VERBOSE};

$t->done;

done_testing;
