#!/usr/bin/perl

# One notification to many channels: the "channels" list of mpns_send
# (validated as a whole before anything is sent), the summary answer and
# its bounded failure list, NDJSON streaming, mpns_concurrency and
# mpns_worker_concurrency as seen by the simulator, the $mpns_sent family
# of variables, and a client that leaves in the middle of a batch.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

use lib 't/lib';
use MpnsTest qw(http_conf slurp);

my $t = MpnsTest->new;

$t->sim_start;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;
    mpns_retries 0;    # retries: t/mpns_retries.t
    mpns_worker_concurrency 3;
    mpns_registry_zone zone=devices:1m;
    mpns_registry_zone zone=big:4m;
    mpns_registry_zone zone=every:1m;

    log_format counts '$mpns_sent|$mpns_delivered|$mpns_expired|'
                      '$mpns_failed|$mpns_outcome|$mpns_message_id|'
                      '$mpns_status';

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        access_log %%TESTDIR%%/counts.log counts;

        mpns_max_body_size 64k;

        location = /push {
            mpns_send toast;
        }

        location = /push/two {
            mpns_send toast;
            mpns_concurrency 2;
        }

        location = /push/one-failure {
            mpns_send toast;
            mpns_report_failures 1;
        }

        location = /push/no-failures {
            mpns_send toast;
            mpns_report_failures 0;
        }

        location = /push/fixed {
            mpns_send toast;
            mpns_channel http://127.0.0.1:%%SIM_PORT%%/t/active-fixed;
        }

        location = /push/other-hosts {
            mpns_send toast;
            mpns_allowed_hosts ^localhost$;
        }

        location = /channels {
            mpns_registry devices;
            access_log off;
        }

        location = /broadcast {
            mpns_broadcast devices toast;
        }

        location = /broadcast/keep-expired {
            mpns_broadcast devices toast;
            mpns_remove_expired off;
        }

        location = /broadcast/other-hosts {
            mpns_broadcast devices toast;
            mpns_allowed_hosts ^localhost$;
        }

        location = /every/channels {
            mpns_registry every;
            access_log off;
        }

        location = /every/broadcast {
            mpns_broadcast every toast;
            mpns_read_timeout 300ms;
        }

        location = /big/channels {
            mpns_registry big;
            access_log off;
        }

        location = /big/broadcast {
            mpns_broadcast big toast;
            mpns_concurrency 3;
            mpns_report_failures 2;
        }
    }

EOF_CONF

$t->run;

my $sim = $t->sim_port;
my $json = JSON::PP->new->utf8->canonical;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

sub batch {
    my ($uri, $channels, %opts) = @_;
    my $extra = delete $opts{fields} // {};
    return $t->post_json($uri, { channels => $channels, text1 => 'Hi',
                                 %$extra }, %opts);
}

sub counts_log {
    my $n = shift;
    my $log = $t->testdir . '/counts.log';
    $t->wait_for(sub { my @l = split /\n/, slurp($log); @l >= $n }, 5);
    return (split /\n/, slurp($log))[$n - 1];
}

my $lines = 0;

###############################################################################

subtest 'three channels, all delivered' => sub {
    $t->sim_reset;

    my @c = map { ch("active-$_") } 1 .. 3;
    my $r = batch('/push', \@c);

    is($r->{status}, 200, 'answer 200');
    like($r->{headers}{'content-type'}, qr{^application/json}, 'json');

    my $j = $r->{json};
    is_deeply([@$j{qw(sent delivered expired failed removed)}],
              [3, 3, 0, 0, 0], 'sent 3, delivered 3');
    is_deeply($j->{outcomes}, { delivered => 3 }, 'outcomes');
    is_deeply($j->{failures}, [], 'no failures');
    is($j->{failures_omitted}, 0, 'none omitted');
    like($j->{message_id}, qr/^[0-9a-f-]{36}$/, 'message id');
    ok(defined $j->{time_ms}, 'time_ms');

    my $reqs = $t->sim_requests;
    is_deeply([sort map { $_->{target} } @$reqs],
              [map { "/t/active-$_" } 1 .. 3], 'each channel once');

    my %ids = map { ($_->{hdr}{'x-messageid'} // '') => 1 } @$reqs;
    is_deeply([keys %ids], [$j->{message_id}],
              'one message id for the whole batch');

    is(counts_log(++$lines), "3|3|0|0|-|$j->{message_id}|-",
       '$mpns_sent|delivered|expired|failed; no single outcome or status');
};

subtest 'every kind of result' => sub {
    $t->sim_reset;

    my @c = (ch('active-a'), ch('expired-b'), ch('queuefull-c'),
             ch('busy-d'), ch('reset-e'), ch('inactive-f'));
    my $r = batch('/push', \@c);

    is($r->{status}, 200, 'answer 200');

    my $j = $r->{json};
    is_deeply([@$j{qw(sent delivered expired failed)}], [6, 1, 1, 4],
              'sent 6: 1 delivered, 1 expired, 4 failed');
    is_deeply($j->{outcomes},
              { delivered => 1, expired => 1, queue_full => 1,
                unavailable => 1, transport_error => 1,
                device_inactive => 1 }, 'every outcome counted');

    my %f = map { $_->{channel} => "$_->{outcome} "
                                   . ($_->{status} // 'null') }
            @{$j->{failures}};
    is_deeply(\%f, { ch('expired-b') => 'expired 404',
                     ch('queuefull-c') => 'queue_full 200',
                     ch('busy-d') => 'unavailable 503',
                     ch('reset-e') => 'transport_error null',
                     ch('inactive-f') => 'device_inactive 412' },
              'failures: channel, outcome, status');
    is($j->{removed}, 0, 'nothing removed without a registry');

    is(counts_log(++$lines), "6|1|1|4|-|$j->{message_id}|-", 'variables');
};

subtest 'mpns_report_failures bounds the list' => sub {
    my @c = map { ch("expired-$_") } 1 .. 4;

    my $j = batch('/push/one-failure', \@c)->{json};
    is(scalar @{$j->{failures}}, 1, 'one listed');
    is($j->{failures_omitted}, 3, 'three omitted');
    is($j->{expired}, 4, 'all four counted');
    $lines++;

    $j = batch('/push/no-failures', \@c)->{json};
    is_deeply($j->{failures}, [], '0: no list');
    is($j->{failures_omitted}, 4, 'four omitted');
    $lines++;
};

###############################################################################

# a mistake anywhere in the list: nothing is sent

$t->refused('channel not allowed', 403, 'channel host is not allowed',
            'channels',
            sub { batch('/push', [ch('active-1'), 'http://example.com/x']) });

$t->refused('not an http url', 400, 'channel is not an http or https url',
            'channels',
            sub { batch('/push', [ch('active-1'), 'ftp://127.0.0.1/x']) });

$t->refused('not a string', 400, 'invalid value', 'channels',
            sub { batch('/push', [ch('active-1'), 7]) });

$t->refused('not a list', 400, 'invalid value', 'channels',
            sub { batch('/push', ch('active-1')) });

$t->refused('empty list', 400, 'empty list', 'channels',
            sub { batch('/push', []) });

$t->refused('channel and channels', 400, 'both channel and channels given',
            'channels',
            sub { batch('/push', [ch('active-1')],
                        fields => { channel => ch('active-2') }) });

$t->refused('mpns_channel and channels', 400,
            'both channel and channels given', 'channels',
            sub { batch('/push/fixed', [ch('active-1')]) });

$t->refused('duplicate channels', 400, 'duplicate field', 'channels',
            sub { $t->post_json('/push', '{"channels":["' . ch('a') . '"],'
                                         . '"channels":["' . ch('b') . '"],'
                                         . '"text1":"Hi"}') });

$t->refused('a location with other allowed hosts', 403,
            'channel host is not allowed', 'channels',
            sub { batch('/push/other-hosts', [ch('active-1')]) });

$t->refused('an invalid payload refuses the whole batch', 400,
            'missing field', 'text1',
            sub { $t->post_json('/push', { channels => [ch('active-1')] }) });

# the counts of a refused request are not found
$lines += 10;
is(counts_log($lines), '-|-|-|-|-|-|-', 'refused: variables not found');

###############################################################################

subtest 'mpns_concurrency' => sub {
    $t->sim_reset;

    my @c = map { ch("slow200-$_") } 1 .. 6;
    my $r = batch('/push/two', \@c);

    is($r->{json}{delivered}, 6, 'all six delivered');
    is($t->sim_stats->{max_in_flight}, 2, 'never more than 2 at once');
    $lines++;

    $t->sim_reset;

    $r = batch('/push', \@c);
    is($r->{json}{delivered}, 6, 'all six delivered');
    is($t->sim_stats->{max_in_flight}, 3,
       'mpns_worker_concurrency 3 caps the default of 100');
    $lines++;
};

subtest 'mpns_worker_concurrency is shared by batches' => sub {
    $t->sim_reset;

    my @s;

    for my $b (1 .. 3) {
        my @c = map { ch("slow300-$b-$_") } 1 .. 4;
        push @s, $t->http_start('POST', '/push',
                                body => $json->encode({ channels => \@c,
                                                        text1 => 'Hi' }),
                                headers => ['Content-Type'
                                            => 'application/json']);
    }


    my @r = map { $t->http_finish($_) } @s;

    is_deeply([map { $_->{json}{delivered} } @r], [4, 4, 4],
              'three batches of four delivered');
    is($t->sim_stats->{max_in_flight}, 3, "three at once in all")
        or diag(explain($t->sim_stats), explain(\@r));
    $lines += 3;
};

###############################################################################

subtest 'NDJSON' => sub {
    $t->sim_reset;

    my @c = (ch('active-1'), ch('expired-2'), ch('busy-3'));
    my $r = batch('/push', \@c,
                  headers => [Accept => 'application/x-ndjson']);

    is($r->{status}, 200, 'answer 200');
    is($r->{headers}{'content-type'}, 'application/x-ndjson', 'type');
    like($r->{headers}{'transfer-encoding'} // '', qr/chunked/, 'chunked');

    my @l = map { $json->decode($_) } split /\n/, $r->{body};
    is(scalar @l, 4, 'a line per channel and a summary');

    my $sum = pop @l;
    is_deeply([sort keys %$sum], ['summary'], 'last line: summary');
    is($sum->{summary}{sent}, 3, 'summary counts');

    my %by = map { $_->{channel} => $_ } @l;
    is_deeply($by{ch('active-1')},
              { channel => ch('active-1'), status => 200,
                outcome => 'delivered', notification_status => 'Received',
                subscription_status => 'Active',
                device_connection_status => 'Connected',
                time_ms => $by{ch('active-1')}{time_ms} },
              'a delivered line');
    is("$by{ch('expired-2')}{status} $by{ch('expired-2')}{outcome}",
       '404 expired', 'an expired line');
    is("$by{ch('busy-3')}{status} $by{ch('busy-3')}{outcome}",
       '503 unavailable', 'a 503 line');
    $lines++;
};

subtest 'NDJSON, many lines' => sub {
    $t->sim_reset;

    # longer than one output buffer of lines
    my @c = map { ch("active-" . ('x' x 200) . $_) } 1 .. 60;
    my $r = batch('/push', \@c,
                  headers => [Accept => 'application/json, '
                                        . 'application/x-ndjson']);

    my @l = map { $json->decode($_) } split /\n/, $r->{body};
    is(scalar @l, 61, '60 lines and a summary');
    is($l[-1]{summary}{delivered}, 60, 'all delivered');
    is_deeply([sort map { $_->{channel} } @l[0 .. 59]], [sort @c],
              'each channel once');
    $lines++;
};

###############################################################################

subtest 'a client that leaves mid-batch' => sub {
    $t->sim_reset;

    my @c = map { ch("silent-$_") } 1 .. 10;
    my $s = $t->http_start('POST', '/push/two',
                           body => $json->encode({ channels => \@c,
                                                   text1 => 'Hi' }),
                           headers => ['Content-Type' => 'application/json']);

    ok($t->wait_for(sub { $t->sim_stats->{in_flight} == 2 }, 5),
       'two sends under way');
    close $s;

    ok($t->wait_for(sub { $t->sim_stats->{in_flight} == 0 }, 5),
       'both sends cancelled: their connections closed');

    sleep 0.3;
    is($t->sim_stats->{requests}, 2, 'no further channel contacted');

    like(counts_log(++$lines), qr/^0\|0\|0\|0\|-\|/,
         'logged with the counts so far: none finished');

    # the worker and its slots are intact
    my $r = batch('/push', [map { ch("active-$_") } 1 .. 3]);
    is($r->{json}{delivered}, 3, 'the next batch runs');
    $lines++;
};

###############################################################################

# mpns_broadcast: the registry's channels

sub register {
    my ($uri, %e) = @_;
    my $r = $t->post_json($uri, \%e);
    return $r->{status};
}

sub listed {
    my ($uri) = @_;
    my $r = $t->http_get("$uri?limit=1000");
    return [sort map { $_->{channel} } @{$r->{json}{channels} // []}];
}

sub broadcast {
    my ($uri, $fields, %opts) = @_;
    return $t->post_json($uri, { text1 => 'All', %{$fields // {}} }, %opts);
}

my @devices = (
    [ch('active-d1'), user => 'ann', tags => ['news'], os => '8.0'],
    [ch('active-d2'), user => 'bob', tags => ['news', 'sport'], os => '8.0'],
    [ch('active-d3'), user => 'bob', device => 'b2', os => '7.5'],
    [ch('expired-d4'), user => 'cat', tags => ['news'], os => '8.0'],
    [ch('busy-d5'), user => 'dan', tags => ['sport'], os => '7.5'],
);

sub register_devices {
    for my $d (@devices) {
        my ($c, %e) = @$d;
        register('/channels', channel => $c, %e);
    }
}

subtest 'broadcast to every channel' => sub {
    register_devices();
    is(scalar @{listed('/channels')}, 5, 'five registered');

    $t->sim_reset;

    my $r = broadcast('/broadcast');
    is($r->{status}, 200, 'answer 200');

    my $j = $r->{json};
    is_deeply([@$j{qw(sent delivered expired failed removed)}],
              [5, 3, 1, 1, 1], 'sent 5: 3 delivered, 1 expired, 1 failed, '
                               . '1 removed');
    is_deeply($j->{outcomes},
              { delivered => 3, expired => 1, unavailable => 1 },
              'outcomes');
    is_deeply([sort map { "$_->{channel} $_->{outcome}" } @{$j->{failures}}],
              [ch('busy-d5') . ' unavailable', ch('expired-d4') . ' expired'],
              'failures');

    is_deeply([sort map { $_->{target} } @{$t->sim_requests}],
              [sort map { "/t/" . ($_->[0] =~ m{/t/(.*)})[0] } @devices],
              'each registered channel contacted once');

    is_deeply(listed('/channels'),
              [sort map { $_->[0] } grep { $_->[0] !~ /expired/ } @devices],
              'the expired channel was removed from the registry');

    is(counts_log(++$lines), "5|3|1|1|-|$j->{message_id}|-", 'variables');
};

subtest 'a broadcast that meets every outcome' => sub {
    my %want = (
        'active-e'       => ['delivered', 200],
        'queuefull-e'    => ['queue_full', 200],
        'suppressed-e'   => ['suppressed', 200],
        'dropped-e'      => ['dropped', 200],
        'script-400'     => ['bad_request', 400],
        'unauthorized-e' => ['unauthorized', 401],
        'forbidden-e'    => ['forbidden', 403],
        'expired-e'      => ['expired', 404],
        'script-405'     => ['method_not_allowed', 405],
        'throttled0-e'   => ['throttled', 406],
        'inactive-e'     => ['device_inactive', 412],
        'busy-e'         => ['unavailable', 503],
        'reset-e'        => ['transport_error', undef],
        'silent-e'       => ['timeout', undef],
    );

    $t->sim_reset;

    for my $code (400, 405) {
        $t->sim_script("/t/script-$code", [{ status => $code }]);
    }

    register('/every/channels', channel => ch($_)) for keys %want;

    my $j = broadcast('/every/broadcast', {},
                      headers => [Accept => 'application/json'])->{json};

    my %outcomes;
    $outcomes{$_->[0]}++ for values %want;

    is_deeply($j->{outcomes}, \%outcomes, 'fourteen outcomes, once each');
    is_deeply([@$j{qw(sent delivered expired failed removed)}],
              [14, 1, 1, 12, 1], 'counts');

    my %got = map { (($_->{channel} =~ m{/t/(.*)})[0])
                    => [$_->{outcome}, $_->{status}] } @{$j->{failures}};
    delete $want{'active-e'};
    is_deeply(\%got, \%want, 'each failure with its outcome and status');

    is(scalar @{listed('/every/channels')}, 13,
       'only the expired channel removed');
    ok(!(grep { $_ eq ch('expired-e') } @{listed('/every/channels')}),
       'and it is the expired one');

    $lines++;
};

subtest 'broadcast filters' => sub {
    my %cases = (
        'tag=news'          => ['active-d1', 'active-d2'],
        'tag=sport'         => ['active-d2', 'busy-d5'],
        'user=bob'          => ['active-d2', 'active-d3'],
        'os=7.5'            => ['active-d3', 'busy-d5'],
        'os=8.0&tag=sport'  => ['active-d2'],
        'user=nobody'       => [],
        'tag=News'          => [],
    );

    for my $q (sort keys %cases) {
        $t->sim_reset;

        my $r = broadcast("/broadcast?$q");
        is($r->{json}{sent}, scalar @{$cases{$q}}, "$q: sent");
        is_deeply([sort map { $_->{target} } @{$t->sim_requests}],
                  [map { "/t/$_" } @{$cases{$q}}], "$q: those channels");
        $lines++;
    }

    # the same filters in the body; the body wins over the query
    $t->sim_reset;

    my $r = broadcast('/broadcast?tag=sport', { tag => 'news', os => '8.0' });
    is_deeply([sort map { $_->{target} } @{$t->sim_requests}],
              ['/t/active-d1', '/t/active-d2'], 'body filters');
    is($r->{json}{sent}, 2, 'sent 2');
    $lines++;
};

$t->refused('broadcast: a channel is not accepted', 400, 'unknown field',
            'channel', sub { broadcast('/broadcast',
                                       { channel => ch('active-x') }) });

$t->refused('broadcast: nor a channels list', 400, 'unknown field',
            'channels', sub { broadcast('/broadcast',
                                        { channels => [ch('active-x')] }) });

$t->refused('broadcast: a filter is a string', 400, 'invalid value', 'tag',
            sub { broadcast('/broadcast', { tag => ['news'] }) });

$t->refused('broadcast: the payload is checked first', 400, 'missing field',
            'text1', sub { $t->post_json('/broadcast', { tag => 'news' }) });

$t->refused('send: filters are not accepted', 400, 'unknown field', 'tag',
            sub { batch('/push', [ch('active-1')],
                        fields => { tag => 'news' }) });

$lines += 5;

subtest 'mpns_remove_expired off' => sub {
    register('/channels', channel => ch('expired-keep'));

    my $j = broadcast('/broadcast/keep-expired?user=')->{json};
    is($j->{expired}, 1, 'expired');
    is($j->{removed}, 0, 'nothing removed');
    ok((grep { $_ eq ch('expired-keep') } @{listed('/channels')}),
       'still registered');
    $lines++;

    $j = broadcast('/broadcast')->{json};
    is($j->{removed}, 1, 'removed by a location with the default');
    ok(!(grep { $_ eq ch('expired-keep') } @{listed('/channels')}),
       'gone');
    $lines++;
};

subtest 'channels the allow-list no longer permits' => sub {
    $t->sim_reset;

    my $r = broadcast('/broadcast/other-hosts');
    my $j = $r->{json};

    is($j->{sent}, 4, 'all four counted');
    is_deeply($j->{outcomes}, { refused => 4 }, 'all refused');
    is(scalar @{$t->sim_requests}, 0, 'none contacted');
    is(scalar @{listed('/channels')}, 4, 'none removed');
    $lines++;
};

subtest 'a registry larger than a refill, under mpns_concurrency 3' => sub {
    for my $i (1 .. 150) {
        register('/big/channels', channel => ch(sprintf 'active-%03d', $i),
                 tags => [$i % 3 ? 'many' : 'few']);
    }

    register('/big/channels', channel => ch("expired-$_"), tags => ['many'])
        for 1 .. 5;

    $t->sim_reset;

    my $j = broadcast('/big/broadcast')->{json};
    is_deeply([@$j{qw(sent delivered expired removed)}], [155, 150, 5, 5],
              'all 155 sent, 5 expired and removed');
    is(scalar @{$j->{failures}}, 2, 'two failures listed');
    is($j->{failures_omitted}, 3, 'three omitted');

    my %seen;
    $seen{$_->{target}}++ for @{$t->sim_requests};
    is(scalar keys %seen, 155, '155 channels contacted');
    is((grep { $_ != 1 } values %seen), 0, 'each once');
    $lines++;

    $t->sim_reset;

    $j = broadcast('/big/broadcast?tag=few')->{json};
    is($j->{sent}, 50, 'a filter across refills: 50');
    $lines++;
};

subtest 'NDJSON broadcast' => sub {
    my $r = broadcast('/big/broadcast?tag=few', {},
                      headers => [Accept => 'application/x-ndjson']);
    my @l = map { $json->decode($_) } split /\n/, $r->{body};

    is(scalar @l, 51, '50 lines and a summary');
    is($l[-1]{summary}{delivered}, 50, 'summary');
    $lines++;
};

subtest 'a client that leaves mid-broadcast' => sub {
    register('/big/channels', channel => ch("silent-$_"), tags => ['quiet'])
        for 1 .. 10;

    $t->sim_reset;

    my $s = $t->http_start('POST', '/big/broadcast?tag=quiet',
                           body => '{"text1":"Hi"}',
                           headers => ['Content-Type' => 'application/json']);

    ok($t->wait_for(sub { $t->sim_stats->{in_flight} == 3 }, 5),
       'three sends under way');
    close $s;

    ok($t->wait_for(sub { $t->sim_stats->{in_flight} == 0 }, 5),
       'cancelled');
    sleep 0.3;
    is($t->sim_stats->{requests}, 3, 'no further channel contacted');
    $lines++;

    is(broadcast('/big/broadcast?tag=few')->{json}{delivered}, 50,
       'the next broadcast runs');
    $lines++;
};

subtest 'a single send has counts too' => sub {
    my $r = $t->push_toast(ch('active-single'));
    is($r->{status}, 200, 'sent');
    like(counts_log(++$lines), qr/^1\|1\|0\|0\|delivered\|/, 'sent 1');

    $t->push_toast(ch('expired-single'));
    like(counts_log(++$lines), qr/^1\|0\|1\|0\|expired\|/, 'expired 1');

    $t->push_toast(ch('busy-single'));
    like(counts_log(++$lines), qr/^1\|0\|0\|1\|unavailable\|/, 'failed 1');
};

$t->done;

done_testing;
