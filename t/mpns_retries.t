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

$t->done;

done_testing;
