#!/usr/bin/perl

# Background sends (docs/patterns.md, "send and move on"): 202 and an id at
# once; the outbox drained by the workers with MPNS-aware delays (503 and
# QueueFull with backoff, 412 and 406 after their windows, all bounded by
# mpns_max_age); the result at GET <location>/<id> and POSTed to
# mpns_result_callback, again and again while the application is down;
# delay and send_at; the outbox across a reload and a stop and start;
# a full outbox; the mistakes.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);

use lib 't/lib';
use MpnsTest qw(http_conf slurp);

my $t = MpnsTest->new;

$t->sim_start;

my $app = $t->port('app');
my $dir = $t->testdir;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;

    mpns_outbox_zone zone=out:1m state=%%TESTDIR%%/outbox.ndjson;
    mpns_outbox_zone zone=tiny:32k;
    mpns_outbox_zone zone=opt:1m state=%%TESTDIR%%/opt.ndjson;
    mpns_outbox_zone zone=bc:1m;
    mpns_outbox_zone zone=any:1m;
    mpns_registry_zone zone=devices:1m;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location /bg {
            mpns_send toast;
            mpns_outbox out;
            mpns_mode background;
            mpns_result_callback http://127.0.0.1:%%PORT_APP%%/results;
            mpns_backoff 200ms device_inactive=1s throttled=1s;
            mpns_max_age 3s;
            mpns_result_keep 30s;
        }

        location /tiny {
            mpns_send raw;
            mpns_outbox tiny;
            mpns_mode background;
            mpns_max_payload_size 8k;
        }

        location /opt {
            mpns_send toast;
            mpns_outbox opt;
            mpns_async on;
        }

        location = /wait {
            mpns_send toast;
        }

        location = /any {
            mpns_send;
            mpns_outbox any;
            mpns_async on;
        }

        location = /channels {
            mpns_registry devices;
        }

        location /bcast {
            mpns_broadcast devices toast;
            mpns_outbox bc;
            mpns_mode background;
            mpns_backoff 300ms;
            mpns_concurrency 2;
        }
    }

EOF_CONF

$t->run;

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

sub bg {
    my ($uri, $channel, %f) = @_;
    return $t->post_json($uri, { channel => $channel, text1 => 'Hi', %f });
}

sub state_of {
    my ($uri, $id) = @_;
    return $t->http_get("$uri/$id")->{json} // {};
}

sub wait_state {
    my ($uri, $id, $want, $secs) = @_;
    my $s;
    $t->wait_for(sub { $s = state_of($uri, $id); ($s->{state} // '') eq $want },
                 $secs // 5);
    return $s;
}

sub sent_to { scalar grep { $_->{target} eq "/t/$_[0]" } @{$t->sim_requests} }

# the application: logs each POST body as a line, answers 200
sub app_start {
    my $ls = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$app",
                                   Listen => 16, ReuseAddr => 1)
        or die "app: $!";

    my $pid = fork() // die;

    if ($pid) {
        close $ls;
        return $pid;
    }

    my $sel = IO::Select->new($ls);
    my %buf;

    while (1) {
        for my $s ($sel->can_read) {
            if ($s == $ls) {
                my $c = $ls->accept or next;
                $sel->add($c);
                $buf{$c} = '';
                next;
            }

            if (!sysread($s, $buf{$s}, 65536, length $buf{$s})) {
                $sel->remove($s);
                close $s;
                next;
            }

            while ($buf{$s} =~ /\r\n\r\n/) {
                my $h = $+[0];
                my ($len) = substr($buf{$s}, 0, $h) =~ /Content-Length:\s*(\d+)/i;
                last if length($buf{$s}) < $h + ($len // 0);
                my $req = substr($buf{$s}, 0, $h + ($len // 0), '');
                open my $fh, '>>', "$dir/app.log";
                print $fh substr($req, $h), "\n";
                close $fh;
                syswrite($s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        }
    }
}

sub app_results {
    return map { decode_json($_) } grep { length } split /\n/,
           slurp("$dir/app.log");
}

my $app_pid = app_start();

###############################################################################

subtest 'sent in the background, reported twice' => sub {
    $t->sim_reset;

    my $r = bg('/bg', ch('active-1'));
    is($r->{status}, 202, '202 at once');
    like($r->{json}{id} // '', qr/^[0-9a-f]{16}$/, 'an id');
    is($r->{json}{state}, 'pending', 'pending');
    like($r->{json}{message_id}, qr/^[0-9a-f-]{36}$/, 'the message id');

    my $id = $r->{json}{id};
    my $s = wait_state('/bg', $id, 'done');

    is_deeply([@$s{qw(outcome status attempts channel)}],
              ['delivered', 200, 1, ch('active-1')], 'GET /bg/<id>: done');
    is(sent_to('active-1'), 1, 'MPNS got it');

    ok($t->wait_for(sub { grep { $_->{id} eq $id } app_results() }, 5),
       'POSTed to the application')
        or diag(join "\n", grep { /callback|\[error\]|\[warn\]/ }
                             split /\n/, $t->error_log);
    my ($cb) = grep { $_->{id} eq $id } app_results();
    is_deeply([@$cb{qw(state outcome status attempts)}],
              ['done', 'delivered', 200, 1], 'the same result');
};

subtest 'GET of an unknown id' => sub {
    my $r = $t->http_get('/bg/0123456789abcdef');
    is($r->{status}, 404, '404');
    is_deeply($r->{json}, { error => 'not found', field => 'id' }, 'body');
    is($t->http_get('/bg/nothex')->{status}, 404, 'not an id: 404');
};

###############################################################################

# what the outbox does with each answer

subtest '503: backoff, then delivered' => sub {
    $t->sim_reset;
    $t->sim_script('/t/b1', [{ state => 'busy' }, { state => 'busy' },
                             { state => 'active' }]);

    my $id = bg('/bg', ch('b1'))->{json}{id};
    my $s = wait_state('/bg', $id, 'done');

    is("$s->{outcome} $s->{attempts}", 'delivered 3', 'third time');
    is(sent_to('b1'), 3, 'three sends');
};

subtest 'QueueFull then Received' => sub {
    $t->sim_reset;
    $t->sim_script('/t/q1', [{ state => 'queuefull' }, { state => 'active' }]);

    my $id = bg('/bg', ch('q1'))->{json}{id};
    my $s = wait_state('/bg', $id, 'done');

    is("$s->{outcome} $s->{attempts}", 'delivered 2', 'second time');
};

subtest '412: not again before its window' => sub {
    $t->sim_reset;
    $t->sim_script('/t/i1', [{ state => 'inactive' }, { state => 'active' }]);

    my $id = bg('/bg', ch('i1'))->{json}{id};

    ok($t->wait_for(sub { sent_to('i1') == 1 }, 3), 'sent');
    sleep 0.6;
    is(sent_to('i1'), 1, 'not again within device_inactive=1s');
    is(state_of('/bg', $id)->{state}, 'pending', 'pending meanwhile');

    my $s = wait_state('/bg', $id, 'done');
    is("$s->{outcome} $s->{attempts}", 'delivered 2', 'then delivered');
};

subtest '406: hourly (here: every second) until the maximum age' => sub {
    $t->sim_reset;

    my $id = bg('/bg', ch('throttled0-t1'))->{json}{id};
    my $s = wait_state('/bg', $id, 'expired', 6);

    is($s->{outcome}, 'throttled', 'expired, last answer 406');
    ok($s->{attempts} >= 2 && $s->{attempts} <= 4,
       "tried about once a second for 3 s ($s->{attempts})");
};

subtest '503 for good: expired at mpns_max_age' => sub {
    $t->sim_reset;

    my $t0 = time;
    my $id = bg('/bg', ch('busy-forever'))->{json}{id};
    my $s = wait_state('/bg', $id, 'expired', 6);

    is($s->{outcome}, 'unavailable', 'expired');
    ok(time - $t0 >= 2.9, 'not before 3 s');
    ok($s->{attempts} >= 3, "backed off and tried again ($s->{attempts})");
};

subtest 'answers that are final at once' => sub {
    $t->sim_reset;

    for my $c (['expired-f1', 'expired'], ['f2', 'bad_request']) {
        $t->sim_script('/t/f2', [{ status => 400 }]);
        my $id = bg('/bg', ch($c->[0]))->{json}{id};
        my $s = wait_state('/bg', $id, 'done');
        is("$s->{outcome} $s->{attempts}", "$c->[1] 1", "$c->[1]: done");
    }
};

###############################################################################

subtest 'delay and send_at, in order' => sub {
    $t->sim_reset;

    my @ids;
    push @ids, bg('/bg', ch('active-o1'), delay => 2)->{json}{id};
    push @ids, bg('/bg', ch('active-o2'), delay => 0)->{json}{id};

    my @t = gmtime(time + 1);
    my $at = POSIX::strftime('%Y-%m-%dT%H:%M:%SZ', @t);
    my $r = bg('/bg', ch('active-o3'), send_at => $at);
    is($r->{status}, 202, "send_at $at");
    push @ids, $r->{json}{id};

    is(state_of('/bg', $ids[0])->{state}, 'pending', 'the delayed one waits');

    wait_state('/bg', $ids[0], 'done', 6);

    is_deeply([map { $_->{target} } @{$t->sim_requests}],
              ['/t/active-o2', '/t/active-o3', '/t/active-o1'],
              'sent in the order of their times');
};

subtest 'async: false in a background location' => sub {
    $t->sim_reset;

    my $r = bg('/bg', ch('active-now'), async => JSON::PP::false);
    is($r->{status}, 200, 'sent now');
    is($r->{json}{outcome}, 'delivered', 'the answer of MPNS');
};

subtest 'async in a wait location' => sub {
    $t->sim_reset;

    my $r = bg('/opt', ch('active-a1'), async => JSON::PP::true);
    is($r->{status}, 202, 'async: true: 202');
    wait_state('/opt', $r->{json}{id}, 'done');

    $r = bg('/opt', ch('active-a2'), async => JSON::PP::false);
    is($r->{status}, 200, 'async: false: sent now');
    is($r->{json}{outcome}, 'delivered', 'the answer of MPNS');

    $r = bg('/opt', ch('active-a3'));
    is($r->{status}, 200, 'no async: sent now');

    $r = bg('/opt', ch('active-a4'), delay => 1);
    is($r->{status}, 202, 'a delay: in the background');
};

###############################################################################

subtest 'the application down, then up' => sub {
    kill 'TERM', $app_pid;
    waitpid($app_pid, 0);
    unlink "$dir/app.log";

    $t->sim_reset;

    my $id = bg('/bg', ch('active-down'))->{json}{id};
    wait_state('/bg', $id, 'done');

    sleep 1.5;
    is(scalar app_results(), 0, 'nothing delivered while down');

    $app_pid = app_start();

    ok($t->wait_for(sub { grep { $_->{id} eq $id } app_results() }, 8),
       'delivered once it is up');
    is(scalar(grep { $_->{id} eq $id } app_results()), 1, 'once');

    ok((grep { /mpns result callback for $id failed/ }
        $t->error_log_lines('warn')), 'failures logged');
};

###############################################################################

subtest 'the outbox across a reload' => sub {
    $t->sim_reset;

    my $id = bg('/bg', ch('active-reload'), delay => 1)->{json}{id};
    $t->reload;

    my $s = wait_state('/bg', $id, 'done');
    is($s->{outcome}, 'delivered', 'sent by the new workers');
    is(sent_to('active-reload'), 1, 'once');
};

subtest 'a delay beyond mpns_max_age: its age counts from then' => sub {
    $t->sim_reset;

    # /bg gives a send 3 s; this one is to be made in 4
    my $id = bg('/bg', ch('active-late'), delay => 4)->{json}{id};

    # the time it is to be made is saved: after a start, a send whose age
    # counted from its creation would be given up
    $t->stop;
    $t->run;

    my $s = wait_state('/bg', $id, 'done', 8);
    is($s->{outcome}, 'delivered', 'sent when due, not given up');
    is(sent_to('active-late'), 1, 'once');
};

subtest 'the outbox across a stop and a start' => sub {
    $t->sim_reset;

    # /opt: no maximum age to run out while nginx is down
    my $id = bg('/opt', ch('active-restart'), delay => 2)->{json}{id};
    $t->stop;

    like(slurp("$dir/opt.ndjson"), qr/"id":"$id"/,
         'saved by the stopping worker');
    is(sent_to('active-restart'), 0, 'not sent yet');

    $t->run;

    my $s = wait_state('/opt', $id, 'done', 6);
    is($s->{outcome}, 'delivered', 'sent after the start');
    is($s->{attempts}, 1, 'once');
};

subtest 'a full outbox' => sub {
    my ($full, $n) = (undef, 0);

    for (1 .. 50) {
        my $r = $t->http('POST', '/tiny?channel=' . ch("active-big-$_")
                                 . '&delay=60',
                         body => 'x' x 4000,
                         headers => ['Content-Type' => 'text/plain']);
        if ($r->{status} != 202) {
            $full = $r;
            last;
        }
        $n++;
    }

    ok($full, "full after $n");
    is($full->{status}, 507, '507');
    is_deeply($full->{json}, { error => 'outbox is full',
                               field => 'channel' }, 'body');
    ok((grep { /mpns outbox zone "tiny" is full/ } $t->error_log_lines('crit')),
       'logged');
};

$t->tolerate(qr/mpns outbox zone "tiny" is full/);

###############################################################################

subtest 'a broadcast in the background' => sub {
    $t->sim_reset;
    $t->sim_script('/t/d5', [{ state => 'busy' }, { state => 'active' }]);

    for my $d (['active-d1', 'a'], ['active-d2', 'a'], ['active-d3', 'b'],
               ['expired-d4', 'a'], ['d5', 'b'])
    {
        $t->post_json('/channels', { channel => ch($d->[0]),
                                     tags => [$d->[1]] });
    }

    my $r = $t->post_json('/bcast', { text1 => 'To all' });
    is($r->{status}, 202, '202 at once');

    my $s = wait_state('/bcast', $r->{json}{id}, 'done');
    is_deeply([@$s{qw(sent delivered expired failed deferred)}],
              [5, 3, 1, 0, 1], 'sent 5: 3 delivered, 1 expired, 1 deferred');
    is($s->{channel}, undef, 'no single channel');

    my $list = $t->http_get('/channels?limit=100')->{json}{channels};
    ok(!(grep { $_->{channel} eq ch('expired-d4') } @$list),
       'the expired channel left the registry');

    ok($t->wait_for(sub { sent_to('d5') == 2 }, 5),
       'the 503 one sent again, on its own');

    $t->sim_reset;

    $r = $t->post_json('/bcast?tag=a', { text1 => 'To a' });
    $s = wait_state('/bcast', $r->{json}{id}, 'done');
    is($s->{sent}, 2, 'a filter: the two left tagged a');
    is_deeply([sort map { $_->{target} } @{$t->sim_requests}],
              ['/t/active-d1', '/t/active-d2'], 'those two');
};

###############################################################################

# mistakes

$t->refused('async where it is not allowed', 400,
            'async is not allowed here', 'async',
            sub { bg('/wait', ch('active-x'), async => JSON::PP::true) });
$t->refused('a delay where nothing waits', 400,
            'scheduled sends are sent in the background', 'delay',
            sub { bg('/wait', ch('active-x'), delay => 5) });
$t->refused('send_at and delay', 400, 'both send_at and delay given',
            'send_at',
            sub { bg('/bg', ch('active-x'), delay => 5,
                     send_at => '2030-01-01T00:00:00Z') });
$t->refused('a bad send_at', 400, 'invalid value', 'send_at',
            sub { bg('/bg', ch('active-x'), send_at => '2030-13-01 00:00') });
for my $day ('2030-02-31', '2030-04-31', '2029-02-29', '2100-02-29') {
    $t->refused("a send_at on $day, a day its month does not have", 400,
                'invalid value', 'send_at',
                sub { bg('/bg', ch('active-x'),
                         send_at => "${day}T10:00:00Z") });
}
subtest 'a send_at on February 29 of a leap year' => sub {
    for my $day ('2028-02-29', '2400-02-29') {
        my $r = bg('/opt', ch('active-x'), send_at => "${day}T10:00:00Z");
        is($r->{status}, 202, "$day accepted") or diag($r->{raw});
    }
};
$t->refused('a bad delay', 400, 'invalid value', 'delay',
            sub { bg('/bg', ch('active-x'), delay => -1) });
$t->refused('a list in the background', 400,
            'lists are sent in wait mode', 'channels',
            sub { $t->post_json('/bg', { channels => [ch('active-x')],
                                         text1 => 'Hi' }) });
$t->refused('a callback registration in the background', 400,
            'a callback is registered in wait mode', 'type',
            sub { $t->post_json('/any', { type => 'callback',
                                          channel => ch('active-x'),
                                          callback_uri => 'http://a/b',
                                          payload => 'x',
                                          async => JSON::PP::true }) });
$t->refused('not allowed host', 403, 'channel host is not allowed',
            'channel', sub { bg('/bg', 'http://example.com/x') });

# configuration

for my $c (['mpns_send; mpns_mode background;',
            'background sends need "mpns_outbox"'],
           ['mpns_send; mpns_outbox nope;', 'unknown mpns_outbox_zone "nope"'],
           ['mpns_send; mpns_mode maybe;', 'invalid value "maybe"'],
           ['mpns_send; mpns_result_callback https://a/;',
            'invalid result callback "https://a/": an http URL is expected'],
           ['mpns_send; mpns_backoff 1s bogus=1;',
            'invalid parameter "bogus=1"'],
           ['mpns_broadcast r; mpns_mode background;',
            'background sends need "mpns_outbox"'])
{
    my ($rc, $out) = $t->nginx_test(http_conf(
        "    mpns_outbox_zone zone=o:1m;\n"
        . "    mpns_registry_zone zone=r:1m;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . "        location = /x { $c->[0] }\n    }\n"));

    ok($rc != 0 && $out =~ /\[emerg\] \Q$c->[1]\E/, "config: $c->[1]")
        or diag($out);
}

{
    my ($rc, $out) = $t->nginx_test(http_conf(
        "    mpns_outbox_zone zone=o:1m;\n"
        . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
        . "        location = /x { mpns_send; mpns_outbox o; }\n"
        . "        location = /y { mpns_send; mpns_outbox o; }\n    }\n"));

    ok($rc != 0 && $out =~ /\[emerg\] mpns outbox "o" is used by another location/,
       'config: one location per outbox') or diag($out);
}

kill 'TERM', $app_pid;
waitpid($app_pid, 0);

$t->done;

done_testing;
