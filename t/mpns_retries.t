#!/usr/bin/perl

# What the module does with each MPNS answer inside a request (docs/
# patterns.md): 503, resets and timeouts are tried again (mpns_retries,
# mpns_retry_delay, mpns_retry_timeout), every other answer stands; 412 and
# 406 carry retry_after and, with mpns_hold, are remembered per channel by
# all workers so that the next sends inside the window do not reach MPNS.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);

use lib 't/lib';
use MpnsTest qw(http_conf result);

my $t = MpnsTest->new;

$t->sim_start;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;
    mpns_retry_delay 100ms;

    mpns_hold_zone zone=holds:1m;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /push {
            mpns_send toast;
        }

        location = /once {
            mpns_send toast;
            mpns_retries 0;
        }

        location = /budget {
            mpns_send toast;
            mpns_retries 5;
            mpns_retry_delay 200ms;
            mpns_retry_timeout 500ms;
        }

        location = /quick {
            mpns_send toast;
            mpns_read_timeout 200ms;
        }

        location = /held {
            mpns_send toast;
            mpns_hold zone=holds device_inactive=2s throttled=3s;
        }

        location = /held/too {
            mpns_send toast;
            mpns_hold zone=holds;
        }
    }

EOF_CONF

$t->run;

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

# the answers MPNS gives to one channel, in turn
sub script {
    my ($path, @r) = @_;
    $t->sim_script("/t/$path",
                   [map { ref $_ ? $_ : /^\d+$/ ? { status => $_ }
                                                : { state => $_ } } @r]);
}

sub sent_to { scalar grep { $_->{target} eq "/t/$_[0]" } @{$t->sim_requests} }

###############################################################################

subtest '503, 503, 200: delivered on the third try' => sub {
    $t->sim_reset;
    script('r1', 'busy', 'busy', 'active');

    my $t0 = time;
    my $r = $t->push_toast(ch('r1'));

    is(result($r), '200 delivered', 'delivered');
    is($r->{json}{attempts}, 3, 'three attempts');
    is(sent_to('r1'), 3, 'MPNS got it three times');
    ok(time - $t0 >= 0.15, 'after backing off (at least 50 + 100 ms)');

    my @l = $t->log_since(qr/trying again/);
    like($l[-1] // '', qr/\[info\] .*mpns send unavailable, trying again in \d+ ms \(attempt 3 of 3\)/,
         'each retry logged at info');
};

subtest '503 every time: the last answer stands' => sub {
    $t->sim_reset;

    my $r = $t->push_toast(ch('busy-always'));
    is(result($r), '503 unavailable', '503');
    is($r->{json}{attempts}, 3, '1 + mpns_retries 2');
    is(sent_to('busy-always'), 3, 'three sends');
};

subtest 'a connection reset, then an answer' => sub {
    $t->sim_reset;
    script('r2', 'reset', 'active');

    my $r = $t->push_toast(ch('r2'));
    is(result($r), '200 delivered', 'delivered');
    is($r->{json}{attempts}, 2, 'two attempts');
};

subtest 'a timeout, then an answer' => sub {
    $t->sim_reset;
    script('r3', 'slow1000', 'active');

    my $r = $t->push_toast(ch('r3'), uri => '/quick');
    is(result($r), '200 delivered', 'delivered');
    is($r->{json}{attempts}, 2, 'two attempts');
};

subtest 'connection refused every time' => sub {
    my $dead = $t->port('dead');

    my $r = $t->push_toast("http://127.0.0.1:$dead/t/x");
    is(result($r), '502 transport_error', 'transport_error');
    is($r->{json}{attempts}, 3, 'three attempts');
};

subtest 'mpns_retries 0' => sub {
    $t->sim_reset;
    script('r4', 'busy', 'active');

    my $r = $t->push_toast(ch('r4'), uri => '/once');
    is(result($r), '503 unavailable', 'the first answer');
    is($r->{json}{attempts}, 1, 'one attempt');
    is(sent_to('r4'), 1, 'sent once');
};

subtest 'mpns_retry_timeout bounds the retries' => sub {
    $t->sim_reset;

    my $t0 = time;
    my $r = $t->push_toast(ch('busy-budget'), uri => '/budget');
    my $took = time - $t0;

    is(result($r), '503 unavailable', '503');
    ok($r->{json}{attempts} >= 2 && $r->{json}{attempts} <= 3,
       "stopped by the 500 ms budget, not by mpns_retries 5 "
       . "($r->{json}{attempts} attempts)");
    ok($took < 1.5, 'within the budget, give or take the last answer');
};

# answers that stand

for my $case (['400', '400 bad_request', 400],
              ['404', '404 expired', 'expired'],
              ['401', '401 unauthorized', 'unauthorized'],
              ['403', '403 forbidden', 'forbidden'],
              ['412', '412 device_inactive', 'inactive'],
              ['406', '406 throttled', 'throttled0'],
              ['QueueFull', '200 queue_full', 'queuefull'])
{
    my ($name, $want, $answer) = @$case;

    subtest "$name is not tried again" => sub {
        $t->sim_reset;
        script("s$name", $answer, 'active');

        my $r = $t->push_toast(ch("s$name"));
        is(result($r), $want, $want);
        is($r->{json}{attempts}, 1, 'one attempt');
        is(sent_to("s$name"), 1, 'sent once');
    };
}

subtest 'retry_after of 412 and 406' => sub {
    is($t->push_toast(ch('inactive-ra'))->{json}{retry_after}, 3660,
       '412: 3660 s, at most once an hour');
    is($t->push_toast(ch('throttled0-ra'))->{json}{retry_after}, 3600,
       '406: 3600 s, hourly');
};

subtest 'retries in a batch' => sub {
    $t->sim_reset;
    script('b1', 'busy', 'active');

    my $r = $t->post_json('/push', { channels => [ch('b1'), ch('active-b2')],
                                     text1 => 'Hi' });

    is($r->{json}{delivered}, 2, 'both delivered');
    is(sent_to('b1'), 2, 'the 503 one twice');
    is(sent_to('active-b2'), 1, 'the other once');
};

subtest 'a client that leaves while a retry waits' => sub {
    $t->sim_reset;

    my $s = $t->http_start('POST', '/budget',
        body => '{"channel":"' . ch('busy-leave') . '","text1":"Hi"}',
        headers => ['Content-Type' => 'application/json']);

    ok($t->wait_for(sub { sent_to('busy-leave') >= 1 }, 5), 'first try');
    close $s;
    sleep 0.8;

    ok(sent_to('busy-leave') <= 2, 'no more tries after it left');
    is(result($t->push_toast(ch('active-after'))), '200 delivered',
       'the worker goes on');
};

###############################################################################

# mpns_hold: a 412 or 406 answer is repeated, not asked again, in its window

subtest '412 held for the device_inactive window' => sub {
    $t->sim_reset;

    my $r = $t->push_toast(ch('inactive-h1'), uri => '/held');
    is(result($r), '412 device_inactive', 'MPNS: 412');
    is($r->{json}{retry_after}, 2, 'retry_after: the window');

    $r = $t->push_toast(ch('inactive-h1'), uri => '/held');
    is(result($r), '412 device_inactive', 'answered again: 412');
    is($r->{json}{attempts}, 0, 'without an attempt');
    ok($r->{json}{retry_after} >= 1 && $r->{json}{retry_after} <= 2,
       'retry_after: what is left');
    is($r->{headers}{'x-deviceconnectionstatus'}, undef,
       'no MPNS headers: MPNS said nothing this time');
    is(sent_to('inactive-h1'), 1, 'MPNS asked once');

    my $c = ch('inactive-h1');
    ok((grep { /\[info\] .*mpns send to "\Q$c\E" held: device_inactive for \d+ s more/ }
        $t->error_log_lines('info')), 'logged at info');

    is(result($t->push_toast(ch('inactive-h1'), uri => '/held/too')),
       '412 device_inactive', 'another location on the same zone: held');
    is(sent_to('inactive-h1'), 1, 'still once');

    is(result($t->push_toast(ch('inactive-h1'), uri => '/push')),
       '412 device_inactive', 'a location without mpns_hold asks MPNS');
    is(sent_to('inactive-h1'), 2, 'twice now');

    sleep 2.2;

    $r = $t->push_toast(ch('inactive-h1'), uri => '/held');
    is($r->{json}{attempts}, 1, 'after the window: sent');
    is(sent_to('inactive-h1'), 3, 'MPNS asked again');
};

subtest '406 held for the throttled window' => sub {
    $t->sim_reset;

    my $r = $t->push_toast(ch('throttled0-h2'), uri => '/held');
    is(result($r), '406 throttled', 'MPNS: 406');
    is($r->{json}{retry_after}, 3, 'retry_after: the window');

    $r = $t->push_toast(ch('throttled0-h2'), uri => '/held');
    is(result($r), '406 throttled', 'held');
    is($r->{json}{attempts}, 0, 'no attempt');
    is(sent_to('throttled0-h2'), 1, 'MPNS asked once');
};

subtest 'the default windows' => sub {
    my $r = $t->push_toast(ch('inactive-h3'), uri => '/held/too');
    is($r->{json}{retry_after}, 3660, '412: 3660 s');

    $r = $t->push_toast(ch('throttled0-h4'), uri => '/held/too');
    is($r->{json}{retry_after}, 3600, '406: 3600 s');
};

subtest 'other answers are not held' => sub {
    $t->sim_reset;

    $t->push_toast(ch('expired-h5'), uri => '/held') for 1 .. 2;
    $t->push_toast(ch('queuefull-h6'), uri => '/held') for 1 .. 2;

    is(sent_to('expired-h5'), 2, '404: asked each time');
    is(sent_to('queuefull-h6'), 2, 'QueueFull: asked each time');
};

subtest 'held recipients of a batch' => sub {
    $t->sim_reset;

    $t->push_toast(ch('inactive-h7'), uri => '/held');

    my $r = $t->post_json('/held', { channels => [ch('inactive-h7'),
                                                  ch('active-h8')],
                                     text1 => 'Hi' });

    is_deeply($r->{json}{outcomes}, { delivered => 1, device_inactive => 1 },
              'one delivered, one held');
    is_deeply($r->{json}{failures},
              [{ channel => ch('inactive-h7'), outcome => 'device_inactive',
                 status => 412 }], 'reported with its status');
    is(sent_to('inactive-h7'), 1, 'the held one was not sent');
};

subtest 'a hold survives a reload' => sub {
    $t->sim_reset;

    $t->push_toast(ch('inactive-h9'), uri => '/held/too');
    $t->reload;

    is($t->push_toast(ch('inactive-h9'), uri => '/held/too')
       ->{json}{attempts}, 0, 'still held by the new workers');
    is(sent_to('inactive-h9'), 1, 'MPNS asked once');
};

# configuration

sub conf_emerg {
    my ($text, $want, $name) = @_;
    my ($rc, $out) = $t->nginx_test(http_conf($text));
    ok($rc != 0 && $out =~ /\[emerg\] \Q$want\E/, "config: $name")
        or diag($out);
}

for my $c (['mpns_hold zone=nope;', 'unknown mpns_hold_zone "nope"'],
           ['mpns_hold zone=holds bogus=1;', 'invalid parameter "bogus=1"'],
           ['mpns_hold zone=holds throttled=0;',
            'invalid parameter "throttled=0"'],
           ['mpns_hold device_inactive=1s;',
            '"mpns_hold" must have "zone" parameter'],
           ['mpns_hold off; mpns_hold off;',
            '"mpns_hold" directive is duplicate'])
{
    conf_emerg("    mpns_hold_zone zone=holds:1m;\n"
               . "    server {\n        listen 127.0.0.1:%%PORT%%;\n"
               . "        location = /x { mpns_send; $c->[0] }\n    }\n",
               $c->[1], $c->[1]);
}

conf_emerg("    mpns_hold_zone zone=holds:1m;\n"
           . "    mpns_registry_zone zone=holds:1m;\n",
           'the shared memory zone "holds" is already declared',
           'one name, one kind of zone');
conf_emerg("    mpns_hold_zone zone=holds:8k;\n",
           'zone "zone=holds:8k" is too small', 'too small');
conf_emerg("    mpns_hold_zone holds:1m;\n",
           'invalid parameter "holds:1m"', 'without zone=');

$t->done;

done_testing;
