#!/usr/bin/perl

# What a broadcast removed (docs/fanout.md): the expired channels a
# broadcast took out of the registry, marked in its NDJSON lines, listed
# in GET <location>/<id> of a background broadcast and in its result
# callback, bounded (NGX_HTTP_MPNS_REMOVED_LIST) with a count and a flag,
# and kept in the state file.

use strict;
use warnings;

use Test::More;
use JSON::PP;

use lib 't/lib';
use MpnsTest qw(http_conf);

my $t = MpnsTest->new;

$t->sim_start;

my $json = JSON::PP->new;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;

    mpns_registry_zone zone=devices:1m;
    mpns_registry_zone zone=kept:1m;
    mpns_registry_zone zone=many:1m;
    mpns_outbox_zone zone=bc:1m state=%%TESTDIR%%/bc.ndjson;
    mpns_outbox_zone zone=bcm:1m;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /channels { mpns_registry devices; }
        location = /kept/channels { mpns_registry kept; }
        location = /many/channels { mpns_registry many; }

        location = /now {
            mpns_broadcast devices toast;
        }

        location = /kept/now {
            mpns_broadcast kept toast;
            mpns_remove_expired off;
        }

        location /later {
            mpns_broadcast devices toast;
            mpns_outbox bc;
            mpns_mode background;
            mpns_result_callback http://127.0.0.1:%%SIM_PORT%%/results;
        }

        location /many/later {
            mpns_broadcast many toast;
            mpns_outbox bcm;
            mpns_mode background;
        }
    }

EOF_CONF

$t->run;

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

sub register {
    my ($uri, @channels) = @_;
    for (@channels) {
        my $r = $t->post_json($uri, { channel => $_ });
        die "register $_: $r->{status}" if $r->{status} != 201;
    }
}

sub wait_done {
    my ($uri) = @_;
    my $s;
    $t->wait_for(sub { $s = $t->http_get($uri)->{json} // {};
                       ($s->{state} // '') eq 'done' }, 8);
    return $s;
}

sub ndjson {
    my ($uri) = @_;
    my $r = $t->post_json($uri, { text1 => 'Hi' },
                          headers => [Accept => 'application/x-ndjson']);
    return map { $json->decode($_) } split /\n/, $r->{body};
}

###############################################################################

subtest 'NDJSON: the removed channels marked' => sub {
    register('/channels', ch('active-n1'), ch('expired-n2'),
             ch('expired-n3'));

    my @l = ndjson('/now');
    my $sum = pop @l;
    is($sum->{summary}{removed}, 2, 'two removed');

    my %by = map { $_->{channel} => $_ } @l;
    is($by{ch('expired-n2')}{removed}, JSON::PP::true, 'one marked');
    is($by{ch('expired-n3')}{removed}, JSON::PP::true, 'the other');
    ok(!exists $by{ch('active-n1')}{removed}, 'not a delivered one');

    register('/kept/channels', ch('expired-k1'));

    @l = ndjson('/kept/now');
    is($l[0]{outcome}, 'expired', 'expired where nothing is removed');
    ok(!exists $l[0]{removed}, 'not marked');
};

subtest 'in the background: GET and the result callback list them' => sub {
    register('/channels', ch('active-b1'), ch('expired-b2'),
             ch('expired-b3'));
    $t->sim_reset;

    my $r = $t->post_json('/later', { text1 => 'Hi' });
    is($r->{status}, 202, 'accepted');
    my $id = $r->{json}{id};

    my $s = wait_done("/later/$id");
    is($s->{removed}, 2, 'two removed');
    is_deeply([sort @{$s->{removed_channels}}],
              [ch('expired-b2'), ch('expired-b3')], 'listed');
    is($s->{removed_truncated}, JSON::PP::false, 'all of them');
    is($s->{expired}, 2, 'counted as expired');

    my $cb;
    $t->wait_for(sub {
        ($cb) = grep { $_->{target} eq '/results' } @{$t->sim_requests};
        $cb;
    }, 5);
    ok($cb, 'the result POSTed');
    my $body = $cb ? $json->decode($cb->{body}) : {};
    is($body->{id}, $id, 'its id');
    is_deeply([sort @{$body->{removed_channels} // []}],
              [ch('expired-b2'), ch('expired-b3')], 'the list in it');
    is($body->{removed}, 2, 'the count in it');

    # the state file keeps the list
    $t->stop;
    $t->run;

    $s = $t->http_get("/later/$id")->{json};
    is_deeply([sort @{$s->{removed_channels}}],
              [ch('expired-b2'), ch('expired-b3')],
              'listed after a stop and a start');
};

subtest 'bounded: counted, listed while the list has room' => sub {
    # 10 channels of 600 bytes; 4 KB hold 6 of them
    my @c = map { ch(sprintf('expired-%s-%02d', 'x' x 560, $_)) } 1 .. 10;
    register('/many/channels', @c);

    my $r = $t->post_json('/many/later', { text1 => 'Hi' });
    my $s = wait_done("/many/later/$r->{json}{id}");

    is($s->{removed}, 10, 'all counted');
    is($s->{expired}, 10, 'all expired');
    is(scalar @{$s->{removed_channels}}, 6, 'six listed');
    is($s->{removed_truncated}, JSON::PP::true, 'the list truncated');

    my %want = map { $_ => 1 } @c;
    is((grep { !$want{$_} } @{$s->{removed_channels}}), 0,
       'each one of them');
    is(scalar @{$t->http_get('/many/channels?limit=100')->{json}{channels}},
       0, 'all removed from the registry');
};

$t->done;

done_testing;
