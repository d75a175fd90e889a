#!/usr/bin/perl

# Acknowledged means kept (docs/design.md, "State files"): a registration,
# a removal or a background send is answered once its journal record is on
# disk, so a SIGKILL of every nginx process right after the answer loses
# nothing; the journals of several workers replay in the order of the
# changes; a torn last record is dropped with a log line; a write that
# fails is not acknowledged; a send in flight at a crash is made again, and
# only it; a worker killed in the middle of a snapshot keeps nobody from
# saving, and a graceful stop right after it completes; mpns_journal.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Fcntl qw(O_RDONLY O_NONBLOCK);
use POSIX ();
use Time::HiRes qw(time sleep);

use lib 't/lib';
use MpnsTest qw(http_conf slurp uri_escape);

my $t = MpnsTest->new;

$t->sim_start;

my $dir = $t->testdir;
my $reg = "$dir/state/reg.ndjson";
my $out = "$dir/state/out.ndjson";

mkdir "$dir/state" or die "mkdir: $!";

# killed processes are logged by the master, and so is a zone lock one of
# them held: nginx releases it
$t->tolerate(qr/exited on signal 9/);
$t->tolerate(qr/shared memory zone "\w+" was locked by \d+/);

sub conf {
    my (%o) = @_;

    my $workers = $o{workers} // 1;
    my $journal = $o{journal} // 'snapshot=1h';
    my $globals = $o{globals} // '';

    $globals .= "\nworker_processes $workers;";

    return http_conf(<<"EOF") =~ s/^(%%TEST_GLOBALS%%)$/$1\n$globals/mr;

    mpns_allowed_hosts ^127\\.0\\.0\\.1\$;

    mpns_registry_zone zone=reg:1m state=%%TESTDIR%%/state/reg.ndjson;
    mpns_outbox_zone zone=out:1m state=%%TESTDIR%%/state/out.ndjson;
    mpns_outbox_zone zone=bc:1m state=%%TESTDIR%%/state/bc.ndjson;
    mpns_journal $journal;

    log_format pids '\$pid \$status \$request_uri';

    server {
        listen       127.0.0.1:%%PORT%% reuseport;
        server_name  localhost;

        access_log %%TESTDIR%%/pids.log pids;

        location = /channels {
            mpns_registry reg;
        }

        location /bg {
            mpns_send toast;
            mpns_outbox out;
            mpns_mode background;
        }

        location /bcast {
            mpns_broadcast reg toast;
            mpns_outbox bc;
            mpns_mode background;
            mpns_concurrency 4;
        }
    }

EOF
}

$t->write_conf(conf());

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

sub reg { $t->post_json('/channels', $_[0]) }

# the registry, { channel => entry }, page by page

sub entries {
    my (%all, $after);

    for ( ;; ) {
        my $r = $t->http_get('/channels?limit=1000'
                             . (defined $after ? '&after=' . uri_escape($after)
                                               : ''));
        die "listing: $r->{status}" if $r->{status} != 200;

        $all{$_->{channel}} = $_ for @{$r->{json}{channels}};
        $after = $r->{json}{next} // last;
    }

    return \%all;
}

sub entry { entries()->{ch($_[0])} }

sub bg {
    my ($channel, %o) = @_;
    return $t->post_json('/bg', { channel => ch($channel), text1 => 'Hi',
                                  %o });
}

sub sent_to {
    my ($name) = @_;
    return scalar grep { $_->{target} eq "/t/$name" } @{$t->sim_requests};
}

# a crash: SIGKILL to the workers, then to the master and what it started
# meanwhile; workers left without a master come to this process, which
# MpnsTest made a subreaper

sub crash {
    my ($pause) = @_;

    kill 'KILL', $t->worker_pids;
    sleep $pause if $pause;

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

    1 while waitpid(-1, POSIX::WNOHANG()) > 0;
}

sub journals { [ sort glob "$_[0]-journal.*" ] }

# what a pipe holds, in bytes (FIONREAD)

sub pipe_bytes {
    my ($fh) = @_;

    my $n = pack 'i', 0;
    ioctl($fh, 0x541B, $n) or die "FIONREAD: $!";

    return unpack 'i', $n;
}

###############################################################################

$t->run;

subtest 'answered means on disk: SIGKILL right after the answers' => sub {
    $t->log_mark;

    is(reg({ channel => ch('gone'), device => 'g' })->{status}, 201,
       'one registered');
    is($t->http('DELETE', '/channels?device=g')->{status}, 200,
       'and removed');
    is(reg({ channel => ch('kept'), user => 'ann', tags => ['x'] })
       ->{status}, 201, 'another registered');

    my $r = bg('active-later', delay => 2);
    is($r->{status}, 202, 'a background send queued');
    my $id = $r->{json}{id} // 'none';

    crash();

    ok(!-e $reg && !-e $out, 'no snapshot was written');
    is(scalar @{journals($reg)}, 1, 'the registry has a journal file');

    $t->run;

    ok(entry('kept'), 'the registration is there after the restart');
    is(entry('kept')->{user} // '', 'ann', 'as it was');
    ok(!entry('gone'), 'the removal too');

    is($t->http_get("/bg/$id")->{status}, 200, 'the send is there');
    ok($t->wait_for(sub {
        ($t->http_get("/bg/$id")->{json}{state} // '') eq 'done' }, 10),
       'and made after the restart');
    is(sent_to('active-later'), 1, 'once');

    ok((grep { /mpns registry zone "reg": replayed 3 records of 1 journal files/ }
        $t->log_since('notice')), 'replayed, logged');
    ok((grep { /mpns outbox zone "out": replayed \d+ records of 1 journal files/ }
        $t->log_since('notice')), 'for the outbox too');
};

###############################################################################

subtest 'the journals of two workers replay in the order of the changes' => sub {
    $t->stop;
    unlink $reg, $out, @{journals($reg)}, @{journals($out)};
    unlink "$dir/pids.log";

    $t->write_conf(conf(workers => 2))->run;

    # one channel changed again and again, each time on a new connection
    # that either worker may take; a device moving between channels

    for my $i (1 .. 40) {
        my $r = reg({ channel => ch('order'), tags => ["t$i"] });
        die "registration $i: $r->{status}" if $r->{status} != 201
                                               && $r->{status} != 200;

        reg({ channel => ch("dev-$i"), device => 'moving' });
    }

    my %pids = map { (split / /)[0] => 1 } $t->access_log_lines('pids.log');
    is(scalar keys %pids, 2, 'both workers took changes');

    crash();

    cmp_ok(scalar @{journals($reg)}, '>=', 2, 'journal files of both');

    $t->run;

    is_deeply(entry('order')->{tags}, ['t40'], 'the last change won');
    ok(entry('dev-40'), 'the device has its last channel');
    my $e = entries();
    is(scalar(grep { $e->{ch("dev-$_")} } 1 .. 39), 0, 'and no other');
};

###############################################################################

subtest 'a torn last record is dropped with a log line' => sub {
    is(reg({ channel => ch('whole') })->{status}, 201, 'one registered');
    is(reg({ channel => ch('torn') })->{status}, 201, 'then another');

    crash();

    # the last record cut short, as a crash of the machine may leave it

    my ($file) = grep { slurp($_) =~ /\Q${\ ch('torn')}\E/ } @{journals($reg)};
    my $text = slurp($file);
    my $at = rindex($text, "\nJ") + 1;

    truncate $file, length($text) - 10 or die "truncate: $!";

    $t->log_mark;
    $t->run;

    ok(entry('whole'), 'the record before it is replayed');
    ok(!entry('torn'), 'the torn one is not');

    my @warn = $t->log_since(qr/torn record/);
    like($warn[0] // '', qr/\[warn\] .*mpns registry zone "reg": torn record at byte $at of "\Q$file\E", ${\ (length($text) - 10 - $at)} bytes dropped/,
         'logged at warn, with where and how much');
    is(scalar @warn, 1, 'once');
};

###############################################################################

subtest 'a journal write that fails is not acknowledged' => sub {
    $t->stop;
    unlink $reg, @{journals($reg)};

    # where the first journal file is to go, a directory

    mkdir "$reg-journal.0.1" or die "mkdir: $!";

    $t->write_conf(conf());
    $t->tolerate(qr/open\(\) "\Q$reg\E-journal\.0\.1" failed/);
    $t->run;
    $t->log_mark;

    my $r = reg({ channel => ch('unsure') });
    is($r->{status}, 500, 'the first change: 500, it is not on disk');

    like(($t->log_since('crit'))[0] // '',
         qr/mpns registry zone "reg": open\(\) "\Q$reg\E-journal\.0\.1" failed \(17: File exists\)/,
         'why, at crit');

    is(reg({ channel => ch('sure') })->{status}, 201,
       'the next: 201, written to a new file');
    ok(-s "$reg-journal.0.2", 'there');

    ok($t->wait_for(sub { slurp($reg) =~ /unsure/ }, 5),
       'the change of the failed write is in the next snapshot, soon');

    ok($t->wait_for(sub { -s "$reg-journal.1.0" }, 5),
       'the snapshot has a checkpoint of its epoch');
    # removed after the checkpoint is written, in the same step
    ok($t->wait_for(sub { !-e "$reg-journal.0.2" }, 5),
       'and the journal it holds is removed');

    $t->stop;
    rmdir "$reg-journal.0.1";
};

###############################################################################

subtest 'a send in flight at a crash is made again, and only it' => sub {
    $t->write_conf(conf())->run;
    $t->sim_reset;

    my $done = bg('active-before')->{json}{id} // 'none';
    ok($t->wait_for(sub {
        ($t->http_get("/bg/$done")->{json}{state} // '') eq 'done' }, 5),
       'one send made');

    my $slow = bg('slow3000-inflight')->{json}{id} // 'none';
    ok($t->wait_for(sub { sent_to('slow3000-inflight') }, 5),
       'another one sent, its answer is slow');

    crash();

    $t->log_mark;
    $t->run;

    ok((grep { /mpns outbox zone "out": 1 sends in flight when it stopped are made again/ }
        $t->log_since('notice')), 'the one in flight, logged');

    ok($t->wait_for(sub {
        ($t->http_get("/bg/$slow")->{json}{state} // '') eq 'done' }, 10),
       'made again after the restart');

    is(sent_to('slow3000-inflight'), 2, 'sent twice: it was in flight');
    is(sent_to('active-before'), 1, 'the one made before: once');
    is($t->http_get("/bg/$done")->{json}{state}, 'done', 'and still done');
};

###############################################################################

# a registry snapshot of four 64 KB slices, and its writer stuck on a pipe
# in the middle of it, then killed

subtest 'a worker killed in the middle of a save blocks nobody' => sub {

    $t->stop;
    unlink $reg, $out, @{journals($reg)}, @{journals($out)};

    open my $fh, '>', $reg or die "$reg: $!";
    print $fh encode_json({ channel => ch(sprintf 'pre-%0140d', $_),
                            device => "d$_", created => 1700000000 }), "\n"
        for 1 .. 1200;
    close $fh;

    $t->write_conf(conf(workers => 2, journal => 'snapshot=2s'))->run;
    $t->log_mark;

    # Either worker may begin the save (the loaded file, then the change,
    # call for one): each gets a pipe of 64 KB as its temp file, and the
    # one written to is the saving worker's.  A pipe is made again when
    # it is gone (a worker removes what it left when it starts, late
    # under valgrind); a save that had begun before has a regular file
    # there, renamed away when it is done.

    my (%pipes, $w);

    my $pipes = sub {
        for my $pid ($t->worker_pids) {
            my $fifo = "$reg.$pid.tmp";
            my $ino = (stat $fifo)[1] // 0;

            next if $pipes{$pid} && $pipes{$pid}{ino} == $ino;

            delete $pipes{$pid};

            POSIX::mkfifo($fifo, 0600) or $! == POSIX::EEXIST
                or die "mkfifo $fifo: $!";
            -p $fifo or next;

            sysopen(my $r, $fifo, O_RDONLY | O_NONBLOCK) or next;
            fcntl($r, 1031, 65536) or die "F_SETPIPE_SZ: $!";  # F_SETPIPE_SZ
            $pipes{$pid} = { fh => $r, ino => (stat $r)[1] };
        }

        ($w) = grep { pipe_bytes($pipes{$_}{fh}) } keys %pipes;
    };

    $pipes->();

    is(reg({ channel => ch('first') })->{status}, 201, 'a change');

    ok($t->wait_for($pipes, 15), 'a worker began a save') or return;

    # the others save to files again

    for my $pid (grep { $_ != $w } keys %pipes) {
        close delete($pipes{$pid})->{fh};
        unlink "$reg.$pid.tmp";
    }

    my $state = qr/\b$w#\d+: .*mpns registry zone "reg" (state slice|saved)/;

    ok($t->wait_for(sub {
        ((grep { /$state/ } $t->log_since('debug'))[-1] // '') =~ /slice 1:/
    }, 15), 'its first slice written');

    sleep 0.3;
    like((grep { /$state/ } $t->log_since('debug'))[-1] // '', qr/slice 1:/,
         'and it is stuck there');

    my ($slowest, $ok) = (0, 0);

    for my $i (1 .. 10) {
        my $t0 = time;
        $ok++ if reg({ channel => ch("during-$i") })->{status} == 201;
        $slowest = time - $t0 if time - $t0 > $slowest;
    }

    is($ok, 10, 'changes meanwhile answered 201');
    cmp_ok($slowest, '<', $t->timeout_factor, 'at once');

    kill 'KILL', $w;
    ok($t->wait_for(sub { !$t->alive($w) && $t->worker_pids == 2 }, 10),
       'the writer killed, another worker started');

    close delete($pipes{$w})->{fh};
    unlink "$reg.$w.tmp";

    # a graceful stop now: an exiting worker takes the save over

    my $t0 = time;
    $t->stop;
    cmp_ok(time - $t0, '<', 5 * $t->timeout_factor,
           'a graceful stop right after completes');

    my ($took) = $t->log_since(qr/process $w stopped writing/);
    like($took // '', qr/\[warn\] .*mpns registry zone "reg": process $w stopped writing "\Q$reg\E" \d+ s ago, taken over/,
         'the mark of the dead writer taken over, logged');

    my %seen = map { (decode_json($_)->{channel} => 1) } split /\n/,
               slurp($reg);
    is(scalar keys %seen, 1211, 'the snapshot has every entry');

    $t->run;
    is(scalar keys %{entries()}, 1211, 'and so has the registry');
    is_deeply([ glob "$reg.*.tmp" ], [], 'no temp file left');
};

###############################################################################

subtest 'sync on a timer' => sub {
    $t->stop;
    $t->write_conf(conf(journal => 'sync=50ms'))->run;

    is(reg({ channel => ch('timed') })->{status}, 201, 'a change');
    sleep 0.5;

    crash();
    $t->run;

    ok(entry('timed'), 'on disk after the sync');
};

###############################################################################

subtest 'a thread pool of its own' => sub {
    $t->stop;
    $t->write_conf(conf(journal => 'thread_pool=mpns',
                        globals => 'thread_pool mpns threads=2;'))->run;

    is(reg({ channel => ch('pooled') })->{status}, 201, 'a change');

    crash();
    $t->run;

    ok(entry('pooled'), 'kept');
};

###############################################################################

# 300 recipients answering in 40 ms, 4 at a time: a broadcast of 3 s

subtest 'a broadcast stopped or crashed halfway skips nobody' => sub {
    $t->stop;
    $t->write_conf(conf())->run;

    reg({ channel => ch(sprintf 'slow40-bc%03d', $_), tags => ['bc'] })
        for 1 .. 300;

    my $made = sub {
        my %n;
        $n{$_->{target}}++ for grep { $_->{body} =~ /\Q$_[0]\E/ }
                               @{$t->sim_requests};
        return \%n;
    };

    my $done = sub {
        my ($id) = @_;
        return $t->wait_for(sub {
            ($t->http_get("/bcast/$id")->{json}{state} // '') eq 'done'
        }, 20);
    };

    $t->sim_reset;

    my $id = $t->post_json('/bcast?tag=bc', { text1 => 'Stopped' })
             ->{json}{id} // 'none';

    sleep 1;
    $t->stop;

    my $n = $made->('Stopped');
    cmp_ok(scalar keys %$n, '<', 300, 'stopped halfway: '
           . scalar(keys %$n) . ' recipients');

    $t->run;

    ok($done->($id), 'made to the end after the start');

    $n = $made->('Stopped');
    is(scalar keys %$n, 300, 'every recipient');
    is(scalar(grep { $_ > 1 } values %$n), 0, 'each once');
    is($t->http_get("/bcast/$id")->{json}{sent}, 300, 'counted once');

    $id = $t->post_json('/bcast?tag=bc', { text1 => 'Crashed' })
          ->{json}{id} // 'none';

    sleep 1;
    crash();

    $n = $made->('Crashed');
    my $before = keys %$n;

    $t->run;

    ok($done->($id), 'after a crash, made to the end too');

    $n = $made->('Crashed');
    my $twice = grep { $_ > 1 } values %$n;

    is(scalar keys %$n, 300, "every recipient ($before before the crash)");
    cmp_ok($twice, '<=', 2 * 64 + 4,
           "$twice made twice: the answers not yet recorded, at most");
};

$t->done;

###############################################################################

# the directive

sub conf_error {
    my ($args, $want, $name) = @_;

    my ($rc, $text) = $t->nginx_test(http_conf(
        "    mpns_registry_zone zone=r:1m state=$dir/state/r.ndjson;\n"
        . "    mpns_journal $args;\n"));

    ok($rc != 0 && $text =~ /\[emerg\] \Q$want\E/, $name) or diag($text);
}

conf_error('sync=0', 'invalid parameter "sync=0"', 'sync=0');
conf_error('sync=fast', 'invalid parameter "sync=fast"', 'sync not a time');
conf_error('snapshot=0', 'invalid parameter "snapshot=0"', 'snapshot=0');
conf_error('bogus=1', 'invalid parameter "bogus=1"', 'unknown parameter');
conf_error('sync=commit; mpns_journal sync=commit',
           '"mpns_journal" directive is duplicate', 'duplicate');
conf_error('thread_pool=nope', 'unknown thread pool "nope"',
           'a thread pool not declared');

{
    my ($rc, $text) = $t->nginx_test(http_conf(
        "    mpns_registry_zone zone=r:1m state=$dir/state/r.ndjson;\n"
        . "    mpns_journal sync=commit snapshot=5m thread_pool=default;\n"));

    is($rc, 0, 'every parameter, the defaults') or diag($text);
}

done_testing;
