#!/usr/bin/perl

# Recurring sends (docs/patterns.md, "Scheduled tile updates"): "every"
# with "times" or "until" through the outbox, to a channel or as a
# broadcast; made on their schedule, ended by "times", "until" or DELETE
# <location>/<id>, listed at GET <location>/recurring, kept across a stop
# and a start and across kill -9; mpns_min_interval; the mistakes, which
# store nothing; a state file's values checked when it is loaded.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

use lib 't/lib';
use MpnsTest qw(http_conf slurp);

my $t = MpnsTest->new;

$t->sim_start;

my $dir = $t->testdir;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;

    mpns_outbox_zone zone=rec:1m state=%%TESTDIR%%/rec.ndjson;
    mpns_outbox_zone zone=slow:1m;
    mpns_outbox_zone zone=bc:1m;
    mpns_registry_zone zone=devices:1m;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location /rec {
            mpns_send toast;
            mpns_outbox rec;
            mpns_mode background;
            mpns_min_interval 1s;
            mpns_result_keep 1m;
            mpns_result_callback http://127.0.0.1:%%SIM_PORT%%/results;
        }

        location /slow {
            mpns_send toast;
            mpns_outbox slow;
            mpns_async on;
        }

        location = /wait {
            mpns_send toast;
        }

        location = /channels {
            mpns_registry devices;
        }

        location = /status {
            mpns_status;
        }

        location /bc {
            mpns_broadcast devices tile;
            mpns_outbox bc;
            mpns_mode background;
            mpns_min_interval 1s;
        }
    }

EOF_CONF

$t->run;

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

sub rec {
    my ($uri, $channel, %f) = @_;
    return $t->post_json($uri, { channel => $channel, text1 => 'Hi', %f });
}

sub state_of { $t->http_get($_[0])->{json} // {} }

sub wait_state {
    my ($uri, $want, $secs) = @_;
    my $s;
    $t->wait_for(sub { $s = state_of($uri); ($s->{state} // '') eq $want },
                 $secs // 8);
    return $s;
}

sub sent_to { scalar grep { $_->{target} eq "/t/$_[0]" } @{$t->sim_requests} }

# RFC 3339 of a moment $secs from now, with milliseconds
sub rfc3339 {
    my ($at) = time + $_[0];
    return POSIX::strftime('%Y-%m-%dT%H:%M:%S', gmtime $at)
           . sprintf('.%03dZ', ($at - int $at) * 1000);
}

# the result callbacks POSTed for $id, decoded
sub callbacks {
    my ($id) = @_;
    return grep { $_->{id} eq $id }
           map { decode_json($_->{body}) }
           grep { $_->{target} eq '/results' } @{$t->sim_requests};
}

# when each send to $name was seen, polling until $n were or $secs passed;
# @at: those seen before
sub send_times {
    my ($name, $n, $secs, @at) = @_;
    my $start = time;

    while (@at < $n && time - $start < $secs * $t->timeout_factor) {
        my $k = sent_to($name);
        push @at, time while @at < $k;
        sleep 0.05;
    }

    return @at;
}

###############################################################################

subtest 'the mistakes store and send nothing' => sub {
    $t->sim_reset;

    my @cases = (
        [{ every => 30 }, '/slow', 400, 'interval too short', 'every'],
        [{ every => 0 }, '/rec', 400, 'interval too short', 'every'],
        [{ every => 'often' }, '/rec', 400, 'invalid value', 'every'],
        [{ every => 2592001 }, '/rec', 400, 'invalid value', 'every'],
        [{ every => 1, times => 0 }, '/rec', 400, 'invalid value', 'times'],
        [{ every => 1, times => 1000001 }, '/rec', 400, 'invalid value',
         'times'],
        [{ every => 1, times => 'x' }, '/rec', 400, 'invalid value',
         'times'],
        [{ every => 1, until => 'tomorrow' }, '/rec', 400, 'invalid value',
         'until'],
        [{ every => 1, until => '2026-02-30T10:00:00Z' }, '/rec', 400,
         'invalid value', 'until'],
        [{ every => 1, until => rfc3339(-60) }, '/rec', 400,
         'until is in the past', 'until'],
        [{ every => 1, until => rfc3339(60), delay => 120 }, '/rec', 400,
         'until is before the first send', 'until'],
        [{ times => 3 }, '/rec', 400, 'missing field', 'every'],
        [{ until => rfc3339(60) }, '/rec', 400, 'missing field', 'every'],
        [{ every => 60 }, '/wait', 400,
         'recurring sends are sent in the background', 'every'],
        [{ every => 60, channel => 'ftp://x' }, '/rec', 400,
         'channel is not an http or https url', 'channel'],
    );

    for my $c (@cases) {
        my ($f, $uri, $status, $error, $field) = @$c;
        my $r = rec($uri, ch('active-mistake'), %$f);
        my $name = join(',', map { "$_=$f->{$_}" } sort keys %$f);

        is($r->{status}, $status, "$name: $status");
        is_deeply($r->{json}, { error => $error, field => $field },
                  "$name: the error");
    }

    my $r = $t->http_get('/rec/recurring');
    is($r->{status}, 200, 'GET /rec/recurring lists');
    is_deeply($r->{json}, { recurring => [] }, 'nothing stored');

    $r = $t->http_get('/rec?channel=' . ch('active-mistake')
                      . '&text1=Hi&every=60&times=0');
    is_deeply($r->{json}, { error => 'invalid value', field => 'times' },
              'from the query string too');

    sleep 0.3;
    is(sent_to('active-mistake'), 0, 'nothing sent');
};

subtest 'every with times: on the schedule, then done' => sub {
    $t->sim_reset;

    my $start = time;
    my $r = rec('/rec', ch('active-times'), every => 1, times => 3);
    is($r->{status}, 202, 'accepted');
    my $id = $r->{json}{id};

    my @at = send_times('active-times', 2, 8);

    # pending again since the second, made a second after it was created
    my $z;
    ok($t->wait_for(sub { $z = $t->http_get('/status')->{json}{zones}{rec};
                          $z->{pending} == 1 }, 2),
       'pending for the third');
    cmp_ok($z->{oldest_pending_ms}, '<', 900,
           'as old as its occurrence, not as the send');

    @at = send_times('active-times', 3, 8, @at);
    is(scalar @at, 3, 'three sends');

    # on the schedule from the first time: a first send made late (a slow
    # machine, valgrind) does not push the others back
    cmp_ok($at[1] - $start, '>', 0.95, 'the second a second after the start');
    cmp_ok($at[2] - $start, '>', 1.95, 'the third two seconds after it');
    cmp_ok($at[2] - $at[0], '<', 2 + 1.5 * $t->timeout_factor,
           'not pushed back');

    my $s = wait_state("/rec/$id", 'done');
    is($s->{runs}, 3, 'runs');
    is($s->{every}, 1, 'every');
    is($s->{times}, 3, 'times');
    is($s->{until}, undef, 'no until');
    is($s->{due_in_ms}, undef, 'nothing due');
    is($s->{outcome}, 'delivered', 'the last outcome');

    sleep 1.3;
    is(sent_to('active-times'), 3, 'no fourth');

    my @cb = callbacks($id);
    is(scalar @cb, 1, 'the result POSTed once, at the end');
    is($cb[0]{runs}, 3, 'with the occurrences made');
    is($cb[0]{state}, 'done', 'and its state');
};

subtest 'every with until: none after it' => sub {
    $t->sim_reset;

    my $until = rfc3339(2.5);
    my $r = rec('/rec', ch('active-until'), every => '1s', until => $until);
    is($r->{status}, 202, 'accepted');
    my $id = $r->{json}{id};

    my $s = state_of("/rec/$id");
    (my $shown = $until) =~ s/\.000Z$/Z/;
    is($s->{until}, $shown, 'until shown in RFC 3339');
    is($s->{times}, undef, 'no times');

    $s = wait_state("/rec/$id", 'done');
    is($s->{runs}, 3, 'three occurrences before until');
    is(sent_to('active-until'), 3, 'three sends');

    sleep 1.3;
    is(sent_to('active-until'), 3, 'none after');
};

subtest 'listed, then cancelled: never sent again' => sub {
    $t->sim_reset;

    my $id = rec('/rec', ch('active-cancel'), every => 1)->{json}{id};
    my $once = rec('/rec', ch('active-once'), delay => 60)->{json}{id};

    ok($t->wait_for(sub { sent_to('active-cancel') >= 2 }, 5), 'sent twice');

    my $r = $t->http_get('/rec/recurring');
    is($r->{status}, 200, 'listed');
    my @l = grep { $_->{id} eq $id } @{$r->{json}{recurring}};
    is(scalar @l, 1, 'the recurring send is in the list');
    ok(!grep({ $_->{id} eq $once } @{$r->{json}{recurring}}),
       'a send made once is not');
    is($l[0]{every}, 1, 'its interval');
    is($l[0]{times}, undef, 'no end');
    is($l[0]{state}, 'pending', 'waiting for its next time');
    is($l[0]{outcome}, 'delivered', "the last occurrence's outcome");
    cmp_ok($l[0]{runs}, '>=', 2, 'the occurrences made');
    cmp_ok($l[0]{due_in_ms}, '<=', 1000, 'due within a second');

    $r = $t->http('DELETE', "/rec/$id");
    is($r->{status}, 200, 'DELETE: 200');
    is($r->{json}{state}, 'cancelled', 'cancelled');
    my $n = sent_to('active-cancel');

    sleep 2.3;
    is(sent_to('active-cancel'), $n, 'not sent again');
    is(state_of("/rec/$id")->{state}, 'cancelled', 'GET says cancelled');

    is(scalar callbacks($id), 0, 'a cancelled send not POSTed');

    $r = $t->http('DELETE', "/rec/$id");
    is($r->{status}, 409, 'cancelled twice: 409');
    is_deeply($r->{json}, { error => 'already finished', field => 'id' },
              'the error');

    $r = $t->http('DELETE', "/rec/$once");
    is($r->{status}, 200, 'a send made once is cancelled too');
    is(state_of("/rec/$once")->{state}, 'cancelled', 'its state');

    $r = $t->http('DELETE', '/rec/0123456789abcdef');
    is($r->{status}, 404, 'an unknown id: 404');
    is_deeply($r->{json}, { error => 'not found', field => 'id' },
              'the error');

    $r = $t->http('DELETE', '/rec');
    is($r->{status}, 405, 'DELETE without an id: 405');
    like($r->{raw}, qr/\r\nAllow: GET, POST\r\n/, 'allowed methods');

    $r = $t->http('PUT', "/rec/$id");
    is($r->{status}, 405, 'PUT of an id: 405');
    like($r->{raw}, qr/\r\nAllow: GET, DELETE\r\n/, 'allowed methods');
};

subtest 'a recurring broadcast' => sub {
    $t->sim_reset;

    for my $d (qw(active-bc1 active-bc2 expired-bc3)) {
        is($t->post_json('/channels', { channel => ch($d),
                                        device => $d })->{status},
           201, "$d registered");
    }

    my $r = $t->post_json('/bc', { title => 'T', every => 1, times => 2 });
    is($r->{status}, 202, 'accepted');

    my $s = wait_state("/bc/$r->{json}{id}", 'done');
    is($s->{runs}, 2, 'two occurrences');
    is($s->{sent}, 2, 'the last one sent to the two left');
    is($s->{delivered}, 2, 'delivered to both');
    is($s->{expired}, 0, 'none expired in the last one');
    is($s->{removed}, 0, 'none removed in it');
    is_deeply($s->{removed_channels}, [], 'none listed');
    is(sent_to('active-bc1'), 2, 'the first channel twice');
    is(sent_to('active-bc2'), 2, 'the second twice');
    is(sent_to('expired-bc3'), 1, 'the expired one once, then removed');
};

subtest 'across a stop and a start; missed times skipped' => sub {
    $t->sim_reset;

    my $id = rec('/rec', ch('active-restart'), every => 3,
                 times => 3)->{json}{id};

    ok($t->wait_for(sub { sent_to('active-restart') >= 1 }, 5), 'sent once');

    # the second time of the schedule, as nginx has it
    my $s = wait_state("/rec/$id", 'pending');
    my $second = time + $s->{due_in_ms} / 1000;

    $t->stop;

    like(slurp("$dir/rec.ndjson"), qr/"id":"$id".*"every":3000,"times":3,/,
         'saved with its schedule');
    is(sent_to('active-restart'), 1, 'once before the stop');

    # down over the second and the third time
    my $left = $second + 3.5 - time;
    sleep $left if $left > 0;
    $t->run;

    my @at = send_times('active-restart', 3, 10, time);
    is(scalar @at, 3, 'the time missed made once at the start, then one');

    # the one after it at the fourth time, not at once as the third would
    # be were missed times made (unless nginx took that long to start)
    cmp_ok($at[2], '>=', $second + 6 - 0.05, 'the next one on the schedule');

    $s = wait_state("/rec/$id", 'done', 3);
    is($s->{runs}, 3, 'three occurrences made');
    sleep 0.5;
    is(sent_to('active-restart'), 3, 'three sends in all');
};

subtest 'across kill -9: the 202 is a promise' => sub {
    $t->sim_reset;

    my $id = rec('/rec', ch('active-killed'), every => 1, times => 2,
                 delay => 1)->{json}{id};
    ok($id, 'accepted');

    my @workers = $t->worker_pids;
    my $master = delete $t->{master};
    kill 'KILL', $master, @workers;
    ok($t->wait_for(sub { !grep { $t->alive($_) } $master, @workers }, 5),
       'nginx killed');
    is(sent_to('active-killed'), 0, 'not sent before');

    $t->run;

    my $s = wait_state("/rec/$id", 'done');
    is($s->{runs}, 2, 'both occurrences');
    is(sent_to('active-killed'), 2, 'two sends');
};

subtest 'a state file\'s recurring values are checked' => sub {
    $t->sim_reset;

    my $id = rec('/rec', ch('active-file'), every => 60, times => 2,
                 delay => 600)->{json}{id};
    $t->stop;

    my $file = "$dir/rec.ndjson";
    my ($line) = grep { /"id":"$id"/ } split /\n/, slurp($file);
    ok($line, 'saved');

    my @bad = (
        ['"every":60000', '"every":500', 'every'],
        ['"every":60000', '"every":2592000001', 'every'],
        ['"times":2', '"times":1000001', 'times'],
        ['"runs":0', '"runs":4294967296', 'runs'],
        ['"cancelled":0', '"cancelled":2', 'cancelled'],
    );

    open my $fh, '>>', $file or die "$file: $!";
    my $k = 0;
    for my $b (@bad) {
        (my $l = $line) =~ s/\Q$b->[0]\E/$b->[1]/ or die "no $b->[0]";
        my $bid = sprintf('%015x%x', 1, ++$k);
        $l =~ s/"id":"$id"/"id":"$bid"/;
        print $fh "$l\n";
        push @$b, $bid;
    }
    close $fh;

    $t->log_mark;
    $t->run;

    my @warn = $t->log_since(qr/\[warn\].*mpns outbox zone "rec": line/);
    is(scalar @warn, scalar @bad, 'each bad line skipped');

    for my $i (0 .. $#bad) {
        like($warn[$i] // '', qr/skipped: invalid value, field "$bad[$i][2]"/,
             "$bad[$i][1]: skipped");
        is($t->http_get("/rec/$bad[$i][3]")->{status}, 404, 'not loaded');
    }

    is(state_of("/rec/$id")->{every}, 60, 'the good line loaded');
};

$t->tolerate(qr/mpns outbox zone "rec": line \d+ of .* skipped/);

subtest 'mpns_min_interval' => sub {
    for my $c (['0', '"mpns_min_interval" must be at least 1s'],
               ['500ms', '"mpns_min_interval" must be at least 1s'],
               ['abc', '"mpns_min_interval" directive invalid value'],
               ['1s; mpns_min_interval 2s',
                '"mpns_min_interval" directive is duplicate'])
    {
        my ($rc, $out) = $t->nginx_test(http_conf(<<"EOF"));

    mpns_outbox_zone zone=o:1m;
    mpns_min_interval $c->[0];

    server {
        listen       127.0.0.1:%%PORT%%;

        location /x {
            mpns_send toast;
            mpns_outbox o;
            mpns_mode background;
        }
    }

EOF
        isnt($rc, 0, "$c->[0]: refused");
        like($out, qr/\[emerg\] \Q$c->[1]\E in /, "$c->[0]: the message");
    }
};

subtest 'the recipe of docs/patterns.md passes nginx -t' => sub {
    my $doc = slurp("$MpnsTest::ROOT/docs/patterns.md");
    my ($conf) = $doc =~ /^## Scheduled tile updates\n.*?^```nginx\n(.*?)^```/ms;
    ok($conf, 'the recipe found');

    my $tt = MpnsTest->new(tile => 1);
    my $d = $tt->testdir;
    my @so = $tt->modules;

    $conf =~ s{^load_module modules/ngx_http_mpns_module\.so;}
              {load_module $so[0];}m or die 'no load_module';
    $conf =~ s{^load_module modules/ngx_http_mpns_tile_module\.so;}
              {load_module $so[1];}m or die 'no tile load_module';
    $conf =~ s{/var/lib/nginx/mpns/}{$d/}g;
    $conf =~ s{listen       80;}{listen       127.0.0.1:%%PORT%%;};
    $conf = "pid $d/nginx.pid;\n$conf";
    $conf = "user root;\n$conf" if $> == 0;

    # an nginx built from its tarball logs under its prefix by default
    mkdir "$d/logs" unless -d "$d/logs";

    my ($rc, $out) = $tt->nginx_test($conf);
    is($rc, 0, 'nginx -t') or diag($out);
    $tt->done;
};

$t->done;

done_testing;
