#!/usr/bin/perl

# One send path (docs/design.md): a single send, a "channels" list, a
# broadcast, a background send and a background broadcast all complete
# through the same step, so a 412 remembered by mpns_hold on any of them
# is obeyed by every other, and every fan-out, the outbox's included,
# takes its slots from mpns_worker_concurrency.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);

use lib 't/lib';
use MpnsTest qw(http_conf);

my $t = MpnsTest->new;

$t->sim_start;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;
    mpns_worker_concurrency 4;

    mpns_hold_zone zone=holds:1m;
    mpns_outbox_zone zone=out:1m;
    mpns_outbox_zone zone=bc:1m;
    mpns_outbox_zone zone=slow:1m;
    mpns_registry_zone zone=devices:1m;
    mpns_registry_zone zone=many:1m;

    mpns_hold zone=holds device_inactive=3s;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /wait {
            mpns_send toast;
        }

        location /bg {
            mpns_send toast;
            mpns_outbox out;
            mpns_mode background;
            mpns_backoff 200ms device_inactive=10s;
            mpns_max_age 30s;
        }

        location = /channels {
            mpns_registry devices;
        }

        location = /bcast/wait {
            mpns_broadcast devices toast;
        }

        location /bcast/bg {
            mpns_broadcast devices toast;
            mpns_outbox bc;
            mpns_mode background;
            mpns_backoff 200ms device_inactive=10s;
        }

        location = /many {
            mpns_registry many;
        }

        location /many/bg {
            mpns_broadcast many toast;
            mpns_outbox slow;
            mpns_mode background;
            mpns_concurrency 4;
        }
    }

EOF_CONF

$t->run;

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

sub sent_to { scalar grep { $_->{target} eq "/t/$_[0]" } @{$t->sim_requests} }

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

# a channel answered 412 once, then Received; its hold opened by "how"
sub held_by {
    my ($name, $how) = @_;

    $t->sim_script("/t/$name", [{ state => 'inactive' },
                                { state => 'active' }]);

    if ($how eq 'wait') {
        is($t->push_toast(ch($name), uri => '/wait')->{json}{outcome},
           'device_inactive', "$how: 412");

    } elsif ($how eq 'background') {
        my $r = $t->post_json('/bg', { channel => ch($name), text1 => 'Hi' });
        ok($t->wait_for(sub { sent_to($name) == 1 }, 5), "$how: 412");

    } elsif ($how eq 'broadcast') {
        $t->post_json('/channels', { channel => ch($name), tags => [$name] });
        my $r = $t->post_json("/bcast/wait?tag=$name", { text1 => 'Hi' });
        is($r->{json}{outcomes}{device_inactive}, 1, "$how: 412");

    } elsif ($how eq 'background broadcast') {
        $t->post_json('/channels', { channel => ch($name), tags => [$name] });
        my $r = $t->post_json("/bcast/bg?tag=$name", { text1 => 'Hi' });
        my $s = wait_state('/bcast/bg', $r->{json}{id}, 'done');
        is($s->{deferred}, 1, "$how: 412, deferred");
    }

    is(sent_to($name), 1, "$how: MPNS asked once");
}

###############################################################################

# a hold opened by any path holds for every other

for my $how ('wait', 'background', 'broadcast', 'background broadcast') {
    (my $n = $how) =~ tr/ /-/;

    subtest "held by $how, then a wait-mode send" => sub {
        $t->sim_reset;
        held_by("h1-$n", $how);

        my $r = $t->push_toast(ch("h1-$n"), uri => '/wait');
        is($r->{json}{outcome}, 'device_inactive', 'answered as held');
        is($r->{json}{attempts}, 0, 'without an attempt');
        is(sent_to("h1-$n"), 1, 'MPNS not asked again');
    };

    subtest "held by $how, then a background send" => sub {
        $t->sim_reset;
        held_by("h2-$n", $how);

        my $before = sent_to("h2-$n");
        my $r = $t->post_json('/bg', { channel => ch("h2-$n"),
                                       text1 => 'Hi' });
        is($r->{status}, 202, 'queued');

        sleep 1;
        is(sent_to("h2-$n"), $before, 'not sent while the hold lasts');

        my $s = state_of('/bg', $r->{json}{id});
        is($s->{state}, 'pending', 'pending meanwhile');
        is($s->{outcome}, 'device_inactive', 'with the held answer');

        $s = wait_state('/bg', $r->{json}{id}, 'done', 8);
        is($s->{outcome}, 'delivered', 'sent when the window ended');
    };

    subtest "held by $how, then a list" => sub {
        $t->sim_reset;
        held_by("h3-$n", $how);

        my $r = $t->post_json('/wait', { channels => [ch("h3-$n")],
                                         text1 => 'Hi' });
        is($r->{json}{outcomes}{device_inactive}, 1, 'answered as held');
        is(sent_to("h3-$n"), 1, 'MPNS not asked again');
    };
}

###############################################################################

# background broadcasts take their slots from mpns_worker_concurrency 4

subtest 'background broadcasts within mpns_worker_concurrency' => sub {
    $t->sim_reset;

    for my $i (1 .. 24) {
        $t->post_json('/many', { channel => ch("slow300-m$i"),
                                 tags => ['b' . ($i % 3)] });
    }

    my @ids = map {
        $t->post_json("/many/bg?tag=b$_", { text1 => 'Hi' })->{json}{id}
    } 0 .. 2;

    my @s = map { wait_state('/many/bg', $_, 'done', 20) } @ids;

    is_deeply([map { $_->{delivered} } @s], [8, 8, 8],
              'three broadcasts of eight delivered');
    ok($t->sim_stats->{max_in_flight} <= 4, 'never more than 4 at once')
        or diag(explain($t->sim_stats));
    is($t->sim_stats->{max_in_flight}, 4, 'and 4 at once');
};

$t->done;

done_testing;
