#!/usr/bin/perl

# The state files of the outbox and the registry (docs/design.md, "state
# files"): outbox entries are kept with their state, outcome and type by
# name; a file written with the old numbering still loads and is written
# anew with names; a large outbox is saved a buffer per turn of the event
# loop; the writer mark of a worker killed in the middle of a save is taken
# over at once by another worker, which then saves what changed since.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Fcntl qw(O_RDONLY O_NONBLOCK);
use POSIX ();
use Time::HiRes qw(time sleep);

use lib 't/lib';
use MpnsTest qw(http_conf slurp);

my $t = MpnsTest->new;

$t->sim_start;

my $dir = $t->testdir;
my $out = "$dir/out.ndjson";
my $big = "$dir/big.ndjson";

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;

    mpns_outbox_zone zone=out:1m state=%%TESTDIR%%/out.ndjson;
    mpns_outbox_zone zone=big:4m state=%%TESTDIR%%/big.ndjson;
    mpns_journal snapshot=1s;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location /out {
            mpns_send;
            mpns_outbox out;
            mpns_mode background;
        }

        location /big {
            mpns_send raw;
            mpns_outbox big;
            mpns_mode background;
            mpns_max_payload_size 2k;
        }
    }

EOF_CONF

$t->run;

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

sub state_of { $t->http_get("/out/$_[0]")->{json} // {} }

# the lines of a state file as { id => entry }
sub entries {
    my ($file) = @_;
    my %e;

    for (split /\n/, slurp($file)) {
        my $j = eval { decode_json($_) } or return { bad => $_ };
        $e{$j->{id}} = $j;
    }

    return \%e;
}

sub fields {
    my ($e) = @_;
    return [ @$e{qw(state outcome type)} ];
}

###############################################################################

subtest 'states, outcomes and types are saved by name' => sub {
    my %id;

    $t->log_mark;

    for my $s (['active-1', 'toast', { text1 => 'Hi' }],
               ['expired-2', 'tile', { title => 'T' }],
               ['inactive-3', 'flip', { title => 'F' }],
               ['active-4', 'raw', { payload => '<x/>', delay => 600 }],
               ['suppressed-5', 'iconic', { title => 'I' }],
               ['active-6', 'cycle', { title => 'C', delay => 600 }])
    {
        my $r = $t->post_json('/out', { type => $s->[1],
                                        channel => ch($s->[0]),
                                        %{$s->[2]} });
        is($r->{status}, 202, "$s->[1] queued");
        $id{$s->[0]} = $r->{json}{id};
    }

    my %want = (
        'active-1'     => ['done', 'delivered', 'toast'],
        'expired-2'    => ['done', 'expired', 'tile'],
        'inactive-3'   => ['pending', 'device_inactive', 'flip'],
        'active-4'     => ['pending', undef, 'raw'],
        'suppressed-5' => ['done', 'suppressed', 'iconic'],
        'active-6'     => ['pending', undef, 'cycle'],
    );

    my $e;

    ok($t->wait_for(sub {
        $e = entries($out);
        !grep { !$e->{$id{$_}}
                || !eq_array(fields($e->{$id{$_}}), $want{$_}) } keys %id
    }, 5), 'saved');

    is_deeply({ map { $_ => fields($e->{$id{$_}} // {}) } keys %id }, \%want,
              'state, outcome and type by name');

    my $text = slurp($out);
    unlike($text, qr/"(state|outcome|type)":\d/, 'no numbers for them');
    like($text, qr/"state":"done","created":\d+,"due":\d+,"finished":\d+,"attempts":1,"callbacks":0,"status":200,"outcome":"delivered","reported":1,"gave_up":0,"type":"toast","class":2,/,
         'the line of a delivered toast');
    like($text, qr/"state":"pending",.*"attempts":0,"callbacks":0,"status":0,"outcome":null,"reported":0,"gave_up":0,"type":"raw","class":3,/,
         'no outcome before the first answer');

    is(join("\n", $t->log_since('error')), '', 'no [error] lines');
};

###############################################################################

# lines written by the outbox before names (state, outcome and type as
# numbers), for channels of a simulator on port 41373, at 1796213385706

my $old = <<'EOF';
{"id":"37403ebd7213887a","state":2,"created":1796213385706,"due":1796216985712,"finished":1796213385712,"attempts":1,"callbacks":0,"status":200,"outcome":0,"reported":1,"gave_up":0,"type":1,"class":2,"message_id":"3ca0ebc2-09ce-41d8-8a6c-a9caeeaf53cf","channel":"http://127.0.0.1:41373/t/active-1","content_type":"text/xml","target":"toast","body":"PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0idXRmLTgiPz48d3A6Tm90aWZpY2F0aW9uIHhtbG5zOndwPSJXUE5vdGlmaWNhdGlvbiI+PHdwOlRvYXN0Pjx3cDpUZXh0MT5IaTwvd3A6VGV4dDE+PC93cDpUb2FzdD48L3dwOk5vdGlmaWNhdGlvbj4="}
{"id":"41449158e624e6eb","state":2,"created":1796213385718,"due":1796216985721,"finished":1796213385721,"attempts":1,"callbacks":0,"status":200,"outcome":2,"reported":1,"gave_up":0,"type":16,"class":1,"message_id":"f1462f49-ef52-4489-ab80-6db38d1bf8e7","channel":"http://127.0.0.1:41373/t/suppressed-5","content_type":"text/xml","target":"token","body":"PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0idXRmLTgiPz48d3A6Tm90aWZpY2F0aW9uIHhtbG5zOndwPSJXUE5vdGlmaWNhdGlvbiIgVmVyc2lvbj0iMi4wIj48d3A6VGlsZSBUZW1wbGF0ZT0iSWNvbmljVGlsZSI+PHdwOlRpdGxlPkk8L3dwOlRpdGxlPjwvd3A6VGlsZT48L3dwOk5vdGlmaWNhdGlvbj4="}
{"id":"4a2ccaeb8a426713","state":0,"created":1796213385721,"due":1796213985721,"finished":0,"attempts":0,"callbacks":0,"status":0,"outcome":0,"reported":0,"gave_up":0,"type":8,"class":1,"message_id":"1ee03bba-18e0-4329-a795-bae97fff581e","channel":"http://127.0.0.1:41373/t/active-6","content_type":"text/xml","target":"token","body":"PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0idXRmLTgiPz48d3A6Tm90aWZpY2F0aW9uIHhtbG5zOndwPSJXUE5vdGlmaWNhdGlvbiIgVmVyc2lvbj0iMi4wIj48d3A6VGlsZSBUZW1wbGF0ZT0iQ3ljbGVUaWxlIj48d3A6VGl0bGU+Qzwvd3A6VGl0bGU+PC93cDpUaWxlPjwvd3A6Tm90aWZpY2F0aW9uPg=="}
{"id":"50896d2079718f8a","state":0,"created":1796213385716,"due":1796213985716,"finished":0,"attempts":0,"callbacks":0,"status":0,"outcome":0,"reported":0,"gave_up":0,"type":32,"class":3,"message_id":"a343878a-ac7a-49ea-9d87-804b859cfdc5","channel":"http://127.0.0.1:41373/t/active-4","content_type":"text/xml","target":"","body":"PHgvPg=="}
{"id":"50b836517ed64c22","state":0,"created":1796213385715,"due":1796217045717,"finished":0,"attempts":1,"callbacks":0,"status":412,"outcome":10,"reported":0,"gave_up":0,"type":4,"class":1,"message_id":"7703a29e-a12f-46ff-9e8a-4cf4e9bc1d47","channel":"http://127.0.0.1:41373/t/inactive-3","content_type":"text/xml","target":"token","body":"PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0idXRmLTgiPz48d3A6Tm90aWZpY2F0aW9uIHhtbG5zOndwPSJXUE5vdGlmaWNhdGlvbiIgVmVyc2lvbj0iMi4wIj48d3A6VGlsZSBUZW1wbGF0ZT0iRmxpcFRpbGUiPjx3cDpUaXRsZT5GPC93cDpUaXRsZT48L3dwOlRpbGU+PC93cDpOb3RpZmljYXRpb24+"}
{"id":"5588c91349861369","state":2,"created":1796213385712,"due":1796216985714,"finished":1796213385714,"attempts":1,"callbacks":0,"status":404,"outcome":7,"reported":1,"gave_up":0,"type":2,"class":1,"message_id":"f226a3a3-0dcf-4ca0-8df6-791148cab41e","channel":"http://127.0.0.1:41373/t/expired-2","content_type":"text/xml","target":"token","body":"PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0idXRmLTgiPz48d3A6Tm90aWZpY2F0aW9uIHhtbG5zOndwPSJXUE5vdGlmaWNhdGlvbiI+PHdwOlRpbGU+PHdwOlRpdGxlPlQ8L3dwOlRpdGxlPjwvd3A6VGlsZT48L3dwOk5vdGlmaWNhdGlvbj4="}
EOF

subtest 'a file of the old numbering loads and is written with names' => sub {
    $t->stop;

    # the same moments, today; the raw send due now
    my $shift = int(time * 1000) - 1796213385706;
    (my $text = $old) =~ s/"(created|due|finished)":([1-9]\d*)/
                           qq{"$1":} . ($2 + $shift)/ge;
    $text =~ s/:41373\//:$sim\//g;
    $text =~ s/("id":"50896d2079718f8a".*?"due":)\d+/$1 . ($shift + 1796213385716)/e;

    # an outcome and a type the old numbering did not have
    (my $bad = (split /\n/, $old)[0]) =~ s/"outcome":0/"outcome":18/;
    $bad =~ s/7213887a/7213887b/;
    (my $bad2 = $bad) =~ s/"outcome":18/"outcome":0/;
    $bad2 =~ s/"type":1/"type":3/;
    $bad2 =~ s/7213887b/7213887c/;

    open my $fh, '>', $out or die "$out: $!";
    print $fh $text, $bad, "\n", $bad2, "\n";
    close $fh;

    $t->log_mark;
    $t->sim_reset;
    $t->run;

    ok((grep { /mpns outbox zone "out": loaded 6 entries from "\Q$out\E"/ }
        $t->log_since('notice')), 'six entries loaded');
    ok((grep { /mpns outbox zone "out": "\Q$out\E" is in an older format and will be written anew/ }
        $t->log_since('notice')), 'the old format noticed');

    my @warn = $t->log_since(qr/\[warn\].*mpns outbox zone "out": line/);
    like($warn[0] // '', qr/line 7 of "\Q$out\E" skipped: invalid value, field "outcome"/,
         'an unknown old outcome skipped');
    like($warn[1] // '', qr/line 8 of "\Q$out\E" skipped: invalid value, field "type"/,
         'an unknown old type skipped');

    my %api = map { $_ => [ @{state_of($_)}{qw(state outcome attempts)} ] }
              qw(37403ebd7213887a 41449158e624e6eb 4a2ccaeb8a426713
                 50b836517ed64c22 5588c91349861369);

    is_deeply(\%api, {
        '37403ebd7213887a' => ['done', 'delivered', 1],
        '41449158e624e6eb' => ['done', 'suppressed', 1],
        '4a2ccaeb8a426713' => ['pending', undef, 0],
        '50b836517ed64c22' => ['pending', 'device_inactive', 1],
        '5588c91349861369' => ['done', 'expired', 1],
    }, 'the old numbers read as what they meant');

    # the raw notification due now is sent as raw
    ok($t->wait_for(sub { (state_of('50896d2079718f8a')->{state} // '')
                          eq 'done' }, 5), 'the due one sent');
    my ($req) = grep { $_->{target} eq '/t/active-4' } @{$t->sim_requests};
    is($req->{body} // '', '<x/>', 'its payload');
    is($req->{hdr}{'x-notificationclass'}, 3, 'as raw: class 3');
    ok(!exists $req->{hdr}{'x-windowsphone-target'}, 'as raw: no target');

    my %want = (
        '37403ebd7213887a' => ['done', 'delivered', 'toast'],
        '41449158e624e6eb' => ['done', 'suppressed', 'iconic'],
        '4a2ccaeb8a426713' => ['pending', undef, 'cycle'],
        '50896d2079718f8a' => ['done', 'delivered', 'raw'],
        '50b836517ed64c22' => ['pending', 'device_inactive', 'flip'],
        '5588c91349861369' => ['done', 'expired', 'tile'],
    );

    my $got = sub {
        my $e = entries($out);
        return { map { $_ => fields($e->{$_}) } keys %$e };
    };

    ok($t->wait_for(sub { eq_hash($got->(), \%want) }, 5), 'written anew');
    is_deeply($got->(), \%want, 'with names');
    unlike(slurp($out), qr/"(state|outcome|type)":\d/, 'no numbers left');
};

###############################################################################

# a record of /big is about 1.8 KB: 400 of them take six 128 KB buffers

my @big;

subtest 'a large outbox is saved a buffer per turn of the event loop' => sub {
    $t->log_mark;

    for my $i (1 .. 400) {
        my $r = $t->http('POST', '/big?delay=600&channel='
                                 . ch(sprintf 'active-big%03d', $i),
                         body => sprintf('%01000d', $i),
                         headers => ['Content-Type' => 'text/plain']);
        push @big, $r->{json}{id} // 'none';
    }

    is(scalar(grep { /^[0-9a-f]{16}$/ } @big), 400, 'all queued');

    ok($t->wait_for(sub { keys %{entries($big)} == 400 }, 10),
       'every entry in the file');

    my $e = entries($big);
    is(scalar(grep { $e->{$_} } @big), 400, 'each one once');
    is_deeply([ glob "$big.*" ], [], 'no temp file left');

    # the save that wrote them all, and each of its slices
    my @log = $t->log_since(qr/mpns outbox zone "big" (saved|state slice)|epoll timer/);
    my ($last) = grep { $log[$_] =~ /saved version/ } reverse 0 .. $#log;
    my ($n) = ($log[$last // 0] // '') =~ / in (\d+) slices/;

    ok(($n // 0) >= 4, 'in ' . ($n // 'no') . ' slices');

    my @slices = grep { $log[$_] =~ /state slice/ } 0 .. ($last // 0);
    @slices = @slices[-($n // 1) .. -1];

    like($log[$slices[0]], qr/state slice 1: \d+ bytes/, 'the first');

    my $turns = grep {
        my ($from, $to) = ($slices[$_ - 1], $slices[$_]);
        grep { /epoll timer/ } @log[$from .. $to]
    } 1 .. $#slices;

    is($turns, $#slices, 'each slice in a turn of its own');
};

###############################################################################

subtest 'a writer killed in the middle of a save is taken over' => sub {
    my ($w) = $t->worker_pids;
    my $fifo = "$big.$w.tmp";

    # the worker's temporary file: a pipe that takes one buffer, then
    # blocks the writer, which is then killed holding the mark
    POSIX::mkfifo($fifo, 0600) or die "mkfifo: $!";
    sysopen(my $r, $fifo, O_RDONLY | O_NONBLOCK) or die "$fifo: $!";
    fcntl($r, 1031, 131072) or die "F_SETPIPE_SZ: $!";   # F_SETPIPE_SZ

    $t->log_mark;
    $t->tolerate(qr/worker process $w exited on signal 9/);

    my $one = $t->http('POST', '/big?delay=600&channel=' . ch('active-k1'),
                       body => 'one',
                       headers => ['Content-Type' => 'text/plain']);
    is($one->{status}, 202, 'a change');

    ok($t->wait_for(sub {
        grep { /\b$w#\d+: .*mpns outbox zone "big" state slice 1:/ }
        $t->log_since('debug')
    }, 5), 'the save began');

    sleep 0.3;
    ok(!(grep { /mpns outbox zone "big" (saved|state slice 2)/ }
         $t->log_since('debug')), 'and is stuck after one buffer');

    kill 'KILL', $w;
    ok($t->wait_for(sub { grep { $_ != $w } $t->worker_pids }, 10),
       'killed, another worker started');

    close $r;
    unlink $fifo;

    my $two = $t->http('POST', '/big?delay=600&channel=' . ch('active-k2'),
                       body => 'two',
                       headers => ['Content-Type' => 'text/plain']);
    is($two->{status}, 202, 'a change after the kill');

    ok($t->wait_for(sub { entries($big)->{$two->{json}{id}} }, 20),
       'saved by another worker');

    my ($took) = $t->log_since(qr/mpns outbox zone "big": process $w stopped writing/);
    like($took // '', qr/\[warn\].* "\Q$big\E" (\d+) s ago, taken over/,
         'the mark taken over, logged');
    my ($ago) = ($took // '') =~ / (\d+) s ago/;
    cmp_ok($ago // 99, '<', 10, 'at once: its process is gone');

    my $e = entries($big);
    is(scalar(grep { $e->{$_} } @big, $one->{json}{id}, $two->{json}{id}),
       402, 'every entry, the one of the killed save too');
    is(scalar keys %$e, 402, 'nothing else');
    is_deeply([ glob "$big.*" ], [], 'no temp file left');
};

###############################################################################

{
    my ($rc, $out) = $t->nginx_test(http_conf(
        "    mpns_outbox_zone zone=o:1m state=$dir/none/o.ndjson;\n"));

    ok($rc != 0 && $out =~ /\[emerg\] state directory "\Q$dir\E\/none" does not exist/,
       'config: the directory of an outbox state file must exist')
        or diag($out);
}

$t->done;

###############################################################################

# an outbox state directory the workers cannot write (as root: workers as
# nobody, which valgrind reports for the files it cannot remove then)

SKIP: {
    skip 'workers as nobody under valgrind', 1
        if $ENV{TEST_NGINX_VALGRIND} && $> == 0;

    my $u = MpnsTest->new;
    my $ud = $u->testdir;
    my $root = $> == 0;

    mkdir "$ud/ro" or die;

    chmod 0755, $ud;
    chmod($root ? 0755 : 0555, "$ud/ro");

    my $conf = http_conf(<<'EOF_CONF');

    mpns_outbox_zone zone=o:64k state=ro/o.ndjson;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location /o {
            mpns_send;
            mpns_outbox o;
            mpns_mode background;
        }
    }

EOF_CONF

    $conf =~ s/^(%%TEST_GLOBALS%%)$/$1\nuser nobody nogroup;/m if $root;

    my $line = qr/\[emerg\] .*mpns outbox zone "o": state directory "\Q$ud\E\/ro" is not writable by worker processes: open\(\) "\Q$ud\E\/ro\/o\.ndjson\.\d+\.tmp" failed \(13: Permission denied\)/;

    # found when the zone is set up, so nginx -t says so (docs/directives.md)

    my ($rc, $out) = $u->nginx_test($conf);

    ok($rc != 0 && $out =~ $line,
       'unwritable outbox state directory: nginx -t fails, one [emerg]')
        or diag($out);

    chmod 0700, $ud;
    $u->done;
}

done_testing;
