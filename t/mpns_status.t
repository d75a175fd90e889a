#!/usr/bin/perl

# mpns_status and mpns_health (docs/status.md): the counters after a known
# sequence of sends with every outcome, through every kind of send (single,
# channels list, broadcast, background single and broadcast, held,
# refused, cancelled); connections and TLS handshakes; zone, outbox and
# state file figures; the Prometheus output checked by promtool and equal
# to the JSON; the dashboard run in headless Chromium; the answer format
# by ?format= and Accept; the log variables; the health answer (a full
# zone, a state file that cannot be saved, MPNS not answering); a status
# zone too small; consistent answers under concurrent sends; two workers
# and a reload; the configuration mistakes.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use IO::Select;
use File::Path qw(make_path remove_tree);
use POSIX ();
use Time::HiRes qw(sleep time);

use lib 't/lib';
use MpnsTest qw(http_conf slurp);

my $t = MpnsTest->new;

$t->sim_start(tls => 1, strict => 1, client_ca => 1);

my $sim = $t->sim_port;
my $tls = $t->port('sim_tls');
my $strict = $t->port('sim_tls_strict');
my $dir = $t->testdir;
my $C = $t->certs;

my $conf = http_conf(<<'EOF_CONF');

    mpns_allowed_hosts ^127\.0\.0\.1$;
    mpns_retries 0;
    mpns_keepalive_timeout 3s;
    mpns_ssl_trusted_certificate %%CERTS%%/ca.crt;

    # a snapshot a second after a change: what the failed save below needs
    mpns_journal snapshot=1s;

    mpns_registry_zone zone=devices:1m state=%%TESTDIR%%/devices.ndjson;
    mpns_registry_zone zone=small:32k;
    mpns_hold_zone zone=holds:1m;
    mpns_outbox_zone zone=ob:1m state=%%TESTDIR%%/ob.ndjson;
    mpns_outbox_zone zone=obb:1m;
    mpns_outbox_zone zone=obf:1m;

    log_format st '$mpns_type $mpns_host $mpns_id $mpns_outcome '
                  '$mpns_attempts $pid';

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        access_log %%TESTDIR%%/st.log st;

        location = /push {
            mpns_send;
        }

        location = /retry {
            mpns_send toast;
            mpns_retries 2;
            mpns_retry_delay 20ms;
        }

        location = /slow {
            mpns_send toast;
            mpns_read_timeout 300ms;
        }

        location = /hold {
            mpns_send toast;
            mpns_hold zone=holds;
        }

        location = /tls {
            mpns_send toast;
            mpns_ssl_certificate %%CERTS%%/client-a.crt;
            mpns_ssl_certificate_key %%CERTS%%/client-a.key;
        }

        location = /tls-none {
            mpns_send toast;
        }

        location = /tls-untrusting {
            mpns_send toast;
            mpns_ssl_trusted_certificate %%CERTS%%/untrusted-ca.crt;
        }

        location = /tls-mismatch {
            mpns_send toast;
            mpns_ssl_protocols TLSv1.2;
            mpns_ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;
        }

        location = /list {
            mpns_send raw;
        }

        location = /channels {
            mpns_registry devices;
            mpns_allowed_hosts ^127\.0\.0\.1$ ^localhost$;
        }

        location = /small {
            mpns_registry small;
        }

        location = /broadcast {
            mpns_broadcast devices toast;
            mpns_hold zone=holds;
        }

        location /bg {
            mpns_send toast;
            mpns_outbox ob;
            mpns_mode background;
            mpns_result_callback http://127.0.0.1:%%PORT%%/results;
            mpns_allowed_hosts ^127\.0\.0\.1$ ^(localhost)$;
        }

        location = /bg-fail {
            mpns_send toast;
            mpns_outbox obf;
            mpns_mode background;
            mpns_result_callback http://127.0.0.1:%%PORT%%/fail;
        }

        location = /bg-broadcast {
            mpns_broadcast devices toast;
            mpns_outbox obb;
            mpns_mode background;
        }

        location = /results {
            return 204;
        }

        location = /fail {
            return 500;
        }

        location = /status {
            mpns_status;
        }

        location = /health {
            mpns_health;
        }
    }

EOF_CONF

$t->write_conf($conf);
$t->run;

###############################################################################

# helpers

my $OUTCOMES = [qw(delivered queue_full suppressed dropped bad_request
                   unauthorized forbidden expired method_not_allowed
                   throttled device_inactive unavailable transport_error
                   timeout refused tls_handshake_failed tls_verify_failed
                   certificate_rejected)];

sub status {
    my $r = $t->http_get('/status?format=json');
    die "status: $r->{status}\n$r->{body}" if ($r->{status} // 0) != 200;
    return $r->{json};
}

sub ch { $t->sim_url("/t/$_[0]") }

sub https_ch {
    my ($state, $port) = @_;
    return 'https://127.0.0.1:' . ($port // $tls)
           . "/unthrottledthirdparty/01.00/$state";
}

# a notification to $channel; fields given as undef are left out
sub send_to {
    my ($uri, $channel, %f) = @_;

    my %body = (channel => $channel, type => 'toast', text1 => 'Hi', %f);
    delete @body{grep { !defined $body{$_} } keys %body};

    my $r = $t->post_json($uri, \%body);
    return ($r->{json} // {})->{outcome} // "status $r->{status}";
}

# Prometheus text: { "name{label=value,...}" => value }, labels sorted
sub prom_parse {
    my ($text) = @_;

    my %m;

    for my $line (split /\n/, $text) {
        next if $line =~ /^#/ || $line eq '';

        my ($name, $labels, $value) =
            $line =~ /^([a-z_]+)(?:\{(.*)\})? (\S+)$/
            or die "bad line: $line";

        my @l;
        while (($labels // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g) {
            push @l, "$1=$2";
        }

        $m{$name . '{' . join(',', sort @l) . '}'} = $value;
    }

    return \%m;
}

# the chromium command line: headless, nothing but 127.0.0.1 reachable
sub chromium {
    my (@args) = @_;

    my $bin = (grep { -x } '/usr/bin/chromium', '/usr/bin/chromium-browser')
              [0];

    return undef if !$bin;

    return ('timeout', '120', $bin, '--headless', '--no-sandbox',
            '--disable-gpu', '--no-first-run', '--disable-extensions',
            '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--disable-default-apps',
            "--user-data-dir=$dir/chromium",
            '--proxy-server=http://127.0.0.1:1',
            '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
            '--window-size=1280,2200', @args);
}

# runs chromium, returns its stdout; its stderr goes to chromium.log
sub run_chromium {
    my (@cmd) = @_;

    my $pid = open(my $fh, '-|') // die "fork: $!";

    if ($pid == 0) {
        open STDERR, '>>', "$dir/chromium.log";
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }

    local $/;
    my $out = <$fh> // '';
    close $fh;

    return $out;
}

###############################################################################

# a known sequence: every outcome, every kind of send

$t->sim_script('/s/400', [{ status => 400 }]);
$t->sim_script('/s/405', [{ status => 405 }]);

my %sent;    # location => type => outcome => count

sub expect {
    my ($loc, $type, $outcome, $n) = @_;
    $sent{$loc}{$type}{$outcome} += $n // 1;
}

my @push = (
    ['active-1', 'delivered'], ['queuefull-1', 'queue_full'],
    ['suppressed-1', 'suppressed'], ['dropped-1', 'dropped'],
    ['unauthorized-1', 'unauthorized'], ['forbidden-1', 'forbidden'],
    ['expired-1', 'expired'], ['throttled0-1', 'throttled'],
    ['reset-1', 'transport_error'],
);

for my $p (@push) {
    is(send_to('/push', ch($p->[0])), $p->[1], "/push $p->[0]: $p->[1]");
    expect('/push', 'toast', $p->[1]);
}

is(send_to('/push', $t->sim_url('/s/400')), 'bad_request', '/push 400');
is(send_to('/push', $t->sim_url('/s/405')), 'method_not_allowed',
   '/push 405');
expect('/push', 'toast', 'bad_request');
expect('/push', 'toast', 'method_not_allowed');

is(send_to('/push', ch('active-2'), type => 'tile', title => 'T',
           text1 => undef), 'delivered', '/push a tile');
is(send_to('/push', ch('active-3'), type => 'raw', payload => 'x',
           text1 => undef), 'delivered', '/push a raw notification');
expect('/push', 'tile', 'delivered');
expect('/push', 'raw', 'delivered');

is(send_to('/retry', ch('busy-1')), 'unavailable', '/retry: 503 thrice');
expect('/retry', 'toast', 'unavailable');

is(send_to('/slow', ch('slow2000-1')), 'timeout', '/slow: timeout');
expect('/slow', 'toast', 'timeout');

is(send_to('/hold', ch('inactive-h')), 'device_inactive', '/hold: 412');
is(send_to('/hold', ch('inactive-h')), 'device_inactive', '/hold: held');
expect('/hold', 'toast', 'device_inactive', 2);

is(send_to('/tls', https_ch('active-t1')), 'delivered', '/tls: delivered');

ok(status()->{connections}{idle} >= 1, 'an idle connection');

# the idle connection closes; the next one resumes the session
ok($t->wait_for(sub { status()->{connections}{idle} == 0 }, 10),
   'no idle connection after mpns_keepalive_timeout');

is(send_to('/tls', https_ch('active-t2')), 'delivered',
   '/tls: delivered again');
expect('/tls', 'toast', 'delivered', 2);

is(send_to('/tls-none', https_ch('active-t3', $strict)),
   'certificate_rejected', '/tls-none: certificate_rejected');
is(send_to('/tls-untrusting', https_ch('active-t4')), 'tls_verify_failed',
   '/tls-untrusting: tls_verify_failed');
is(send_to('/tls-mismatch', https_ch('active-t5')), 'tls_handshake_failed',
   '/tls-mismatch: tls_handshake_failed');
expect('/tls-none', 'toast', 'certificate_rejected');
expect('/tls-untrusting', 'toast', 'tls_verify_failed');
expect('/tls-mismatch', 'toast', 'tls_handshake_failed');

{
    my $r = $t->post_json('/list', { channels => [ch('active-l1'),
                                                   ch('active-l2'),
                                                   ch('expired-l3')],
                                     payload => 'x' });
    is($r->{json}{delivered}, 2, '/list: 2 delivered');
    expect('/list', 'raw', 'delivered', 2);
    expect('/list', 'raw', 'expired');
}

for my $c (ch('active-b'), ch('inactive-h'),
           "http://localhost:$sim/t/active-lh")
{
    is($t->post_json('/channels', { channel => $c })->{status}, 201,
       "registered $c");
}

{
    my $r = $t->post_json('/broadcast', { text1 => 'all' });
    is($r->{json}{sent}, 3, '/broadcast: 3 recipients');
    expect('/broadcast', 'toast', 'delivered');
    expect('/broadcast', 'toast', 'device_inactive');    # held
    expect('/broadcast', 'toast', 'refused');            # localhost
}

my $bg_id;

{
    my $r = $t->post_json('/bg', { channel => ch('active-bg'),
                                   text1 => 'later' });
    is($r->{status}, 202, '/bg: 202');
    $bg_id = $r->{json}{id};
    expect('/bg', 'toast', 'delivered');

    is($t->post_json('/bg', { channel => ch('active-bg2'), text1 => 'x',
                              delay => 3600 })->{status},
       202, '/bg: one for in an hour');

    is($t->post_json('/bg-fail', { channel => ch('active-bf'),
                                   text1 => 'x' })->{status},
       202, '/bg-fail: 202');
    expect('/bg-fail', 'toast', 'delivered');

    is($t->post_json('/bg-broadcast', { text1 => 'all' })->{status}, 202,
       '/bg-broadcast: 202');
    expect('/bg-broadcast', 'toast', 'delivered');
    expect('/bg-broadcast', 'toast', 'device_inactive');
    expect('/bg-broadcast', 'toast', 'refused');
}

# a client that goes away cancels its send

{
    my $s = $t->push_toast_start(ch('slow3000-c'), uri => '/push');
    ok($t->wait_for(sub { status()->{totals}{in_flight} == 1 }, 5),
       'a send in flight');
    close $s;
    ok($t->wait_for(sub { status()->{totals}{in_flight} == 0 }, 5),
       'cancelled: none in flight');
}

my $s;

ok($t->wait_for(sub {
    $s = status();
    my $bg = $s->{locations}{'/bg'};
    my $bb = $s->{locations}{'/bg-broadcast'};
    my $bf = $s->{locations}{'/bg-fail'};
    return $bg && $bb && $bf && $bg->{notifications} == 1
           && $bb->{notifications} == 3 && $bg->{callbacks}{sent} == 1
           && $bf->{callbacks}{failed} >= 1;
}, 10), 'background sends and the callback done');

# the figures, location by location

my %want_attempts = ('/push' => 13, '/retry' => 3, '/slow' => 1,
                     '/hold' => 1, '/tls' => 2, '/tls-none' => 1,
                     '/tls-untrusting' => 1, '/tls-mismatch' => 1,
                     '/list' => 3, '/broadcast' => 1, '/bg' => 1,
                     '/bg-fail' => 1, '/bg-broadcast' => 2);
my %want_held = ('/hold' => 1, '/broadcast' => 1);

is(join(',', sort keys %{$s->{locations}}),
   join(',', sort keys %want_attempts),
   'a figure for each sending location');

my (%total, $all);

for my $loc (sort keys %sent) {
    my $l = $s->{locations}{$loc} // {};
    my $n = 0;

    for my $type (sort keys %{$sent{$loc}}) {
        for my $o (@$OUTCOMES) {
            my $want = $sent{$loc}{$type}{$o} // 0;
            $total{$o} += $want;
            $n += $want;

            is($l->{types}{$type}{$o}, $want, "$loc $type $o: $want")
                if $want;
        }
    }

    my @types = sort keys %{$l->{types} // {}};
    is("@types", join(' ', sort keys %{$sent{$loc}}), "$loc: its types");

    is($l->{notifications}, $n, "$loc: $n notifications");
    is($l->{attempts}, $want_attempts{$loc}, "$loc: attempts");
    is($l->{held}, $want_held{$loc} // 0, "$loc: held");

    my $refused = $sent{$loc}{toast}{refused} // 0;
    is($l->{response_time}{count},
       $n - ($want_held{$loc} // 0) - $refused,
       "$loc: a response time for each send MPNS was asked");

    $all += $n;
}

is($s->{totals}{notifications}, $all, "totals: $all notifications");

for my $o (@$OUTCOMES) {
    is($s->{totals}{outcomes}{$o}, $total{$o} // 0,
       "totals: $o " . ($total{$o} // 0));
    ok($total{$o}, "the sequence has $o");
}

is($s->{locations}{'/retry'}{retries}, 2, '/retry: 2 retries');
is($s->{totals}{retries}, 2, 'totals: 2 retries');
is($s->{locations}{'/push'}{cancelled}, 1, '/push: 1 cancelled');
is($s->{totals}{in_flight}, 0, 'none in flight');

is($s->{locations}{'/slow'}{response_time}{buckets}{250}, 0,
   '/slow: not within 250 ms');
is($s->{locations}{'/slow'}{response_time}{buckets}{500}, 1,
   '/slow: within 500 ms');
ok($s->{locations}{'/slow'}{response_time}{sum_ms} >= 300,
   '/slow: sum at least the timeout');
ok($s->{locations}{'/slow'}{response_time}{p50_ms} > 250
   && $s->{locations}{'/slow'}{response_time}{p50_ms} <= 500,
   '/slow: p50 in its bucket');

{
    my $l = $s->{locations}{'/push'};
    ok($l->{connections}{opened} >= 1, '/push: connections opened');
    is($l->{connections}{opened} + $l->{connections}{reused}, 14,
       '/push: one connection per request (13 answered, 1 cancelled)');
}

is_deeply($s->{locations}{'/tls'}{connections}, { opened => 2, reused => 0 },
          '/tls: 2 connections opened');
is_deeply($s->{locations}{'/tls'}{tls_handshakes},
          { full => 1, resumed => 1 }, '/tls: a full and a resumed handshake');
is_deeply($s->{locations}{'/tls-mismatch'}{tls_handshakes},
          { full => 0, resumed => 0 },
          '/tls-mismatch: no handshake completed');
is_deeply($s->{locations}{'/tls-untrusting'}{tls_handshakes},
          { full => 0, resumed => 0 },
          '/tls-untrusting: a handshake failing verification is not one');

{
    my $full = 0;
    $full += $_->{tls_handshakes}{full} for values %{$s->{locations}};
    is($s->{totals}{tls_handshakes}{full}, $full,
       'totals: the full handshakes of the locations');
}

is_deeply($s->{locations}{'/bg'}{callbacks}, { sent => 1, failed => 0 },
          '/bg: 1 result callback');
is($s->{locations}{'/bg-fail'}{callbacks}{sent}, 0,
   '/bg-fail: no result callback accepted');

is($s->{mpns}{unanswered}, 0, 'MPNS answered the last send');
ok($s->{mpns}{last_answer} >= time - 60, 'when MPNS last answered');
is($s->{reloads}, 0, 'no reload');
ok($s->{since} <= time && $s->{since} > time - 300, 'counting since');

# zones

{
    my $z = $s->{zones};

    is(join(',', sort keys %$z),
       'devices,holds,mpns_status,ob,obb,obf,small', 'every zone');

    is($z->{devices}{kind}, 'registry', 'devices: a registry');
    is($z->{devices}{entries}, 3, 'devices: 3 entries');
    is($z->{devices}{size}, 1048576, 'devices: 1m');
    ok($z->{devices}{used} > 0 && $z->{devices}{used} < 1048576,
       'devices: some used');
    ok(!$z->{devices}{full}, 'devices: not full');

    is($z->{holds}{kind}, 'hold', 'holds: a hold zone');
    is($z->{holds}{entries}, 1, 'holds: 1 entry');
    is($z->{holds}{active}, 1, 'holds: 1 holding');

    is($z->{ob}{kind}, 'outbox', 'ob: an outbox');
    is($z->{ob}{entries}, 2, 'ob: 2 entries');
    is($z->{ob}{done}, 1, 'ob: 1 done');
    is($z->{ob}{pending}, 1, 'ob: 1 pending');
    is($z->{ob}{due}, 0, 'ob: not due');
    ok($z->{ob}{oldest_pending_ms} > 0
       && $z->{ob}{oldest_pending_ms} < 120000,
       'ob: the age of the oldest pending entry');
    is($z->{ob}{callbacks_pending}, 0, 'ob: no callback pending');
    is($z->{obf}{callbacks_pending}, 1, 'obf: a callback pending');
    is($z->{obf}{callbacks_failing}, 1, 'obf: failing');

    # the 412 recipient goes back into the outbox as a send of its own
    is($z->{obb}{pending}, 1, 'obb: 1 pending (a 412 to try again)');
    is($z->{obb}{done}, 1, 'obb: the broadcast done');
    is($z->{obb}{state_file}, undef, 'obb: no state file');

    is($z->{mpns_status}{kind}, 'status', 'the status zone');
    is($z->{mpns_status}{entries}, 13, 'status zone: 13 locations');

    ok($t->wait_for(sub {
        my $z = status()->{zones};
        return $z->{devices}{state_file}{saves}
               && $z->{ob}{state_file}{saves};
    }, 5), 'state files saved');

    $z = status()->{zones};

    my $f = $z->{devices}{state_file};
    is($f->{path}, "$dir/devices.ndjson", 'devices: the state file');
    is($f->{failures}, 0, 'devices: no failure');
    ok(!$f->{last_failed}, 'devices: the last save worked');
    ok(abs($f->{last_save} - time * 1000) < 60000, 'devices: saved now');
    is($f->{last_success}, $f->{last_save}, 'devices: last success');
    ok($f->{last_duration_ms} >= 0, 'devices: a duration');
    is($z->{ob}{state_file}{path}, "$dir/ob.ndjson", 'ob: the state file');
}

###############################################################################

# the log variables

{
    my @l = $t->access_log_lines('st.log');
    my ($bg) = grep { /\b$bg_id\b/ } @l;

    like($bg // '', qr/^toast 127\.0\.0\.1:$sim $bg_id /,
         '$mpns_type, $mpns_host and $mpns_id of a background send');
    ok((grep { /^tile 127\.0\.0\.1:$sim - delivered 1 / } @l),
       '$mpns_type of a tile');
    ok((grep { m{^toast 127\.0\.0\.1:$tls - delivered 1 } } @l),
       '$mpns_host of an https channel');
    ok((grep { /^toast - - - - / } @l), 'a broadcast has no host');
    ok((grep { /^- - - - - / } @l), 'nothing for a status request');
}

###############################################################################

# Prometheus

my $prom_text;

{
    # state files are saved on a timer: the count is read around the
    # Prometheus answer
    my $saves = status()->{zones}{devices}{state_file}{saves};
    my $r = $t->http_get('/status?format=prometheus');
    is($r->{status}, 200, 'prometheus: 200');
    is($r->{headers}{'content-type'},
       'text/plain; version=0.0.4; charset=utf-8', 'prometheus: type');

    $prom_text = $r->{body};

    open my $fh, '>', "$dir/metrics.txt" or die;
    print $fh $prom_text;
    close $fh;

    my $out = `promtool check metrics < $dir/metrics.txt 2>&1`;
    is($?, 0, 'promtool check metrics') or diag($out);
    is($out, '', 'promtool: no problem found') or diag($out);

    my $p = prom_parse($prom_text);
    my $j = status();

    # the idle connections may close between the two answers
    ok($p->{'nginx_mpns_connections_idle{}'} >= $j->{connections}{idle},
       'idle connections');

    for my $loc (sort keys %{$j->{locations}}) {
        my $l = $j->{locations}{$loc};
        my $bad = 0;

        for my $type (keys %{$l->{types}}) {
            for my $o (@$OUTCOMES) {
                my $k = "nginx_mpns_notifications_total"
                        . "{location=$loc,outcome=$o,type=$type}";
                $bad++ if ($p->{$k} // -1) != $l->{types}{$type}{$o};
            }
        }

        is($bad, 0, "$loc: notifications equal to the JSON's");

        my %one = (attempts_total => $l->{attempts},
                   retries_total => $l->{retries},
                   held_total => $l->{held},
                   cancelled_total => $l->{cancelled},
                   sends_in_flight => $l->{in_flight},
                   connections_opened_total => $l->{connections}{opened},
                   connections_reused_total => $l->{connections}{reused},
                   response_time_seconds_count => $l->{response_time}{count});

        for my $m (sort keys %one) {
            is($p->{"nginx_mpns_$m\{location=$loc}"}, $one{$m},
               "$loc: $m");
        }

        is($p->{"nginx_mpns_tls_handshakes_total{location=$loc,"
                . "session=resumed}"}, $l->{tls_handshakes}{resumed},
           "$loc: resumed handshakes");
        is($p->{"nginx_mpns_result_callbacks_total{location=$loc,"
                . "result=sent}"}, $l->{callbacks}{sent},
           "$loc: callbacks");
        is($p->{"nginx_mpns_response_time_seconds_sum{location=$loc}"},
           sprintf('%.3f', $l->{response_time}{sum_ms} / 1000),
           "$loc: response time sum");

        my %le = (1 => '0.001', 2 => '0.002', 5 => '0.005', 10 => '0.01',
                  25 => '0.025', 50 => '0.05', 100 => '0.1', 250 => '0.25',
                  500 => '0.5', 1000 => '1', 2500 => '2.5', 5000 => '5',
                  10000 => '10', 30000 => '30', '+Inf' => '+Inf');

        is(join(',', map { $p->{"nginx_mpns_response_time_seconds_bucket"
                                 . "{le=$le{$_},location=$loc}"} // 'none' }
                     sort keys %le),
           join(',', map { $l->{response_time}{buckets}{$_} } sort keys %le),
           "$loc: the histogram's buckets");
    }

    for my $zone (sort keys %{$j->{zones}}) {
        my $z = $j->{zones}{$zone};
        my $kl = "kind=$z->{kind},zone=$zone";

        is($p->{"nginx_mpns_zone_entries{$kl}"}, $z->{entries},
           "$zone: entries");
        is($p->{"nginx_mpns_zone_size_bytes{$kl}"}, $z->{size},
           "$zone: size");
        is($p->{"nginx_mpns_zone_full{$kl}"}, $z->{full} ? 1 : 0,
           "$zone: full");
    }

    is($p->{'nginx_mpns_outbox_entries{state=pending,zone=ob}'}, 1,
       'ob: 1 pending');
    is($p->{'nginx_mpns_outbox_entries{state=done,zone=ob}'}, 1,
       'ob: 1 done');
    is($p->{'nginx_mpns_holds_active{zone=holds}'}, 1, 'holds: 1 active');
    my $psaves = $p->{'nginx_mpns_state_saves_total{zone=devices}'};
    ok(defined $psaves && $psaves >= $saves
       && $psaves <= $j->{zones}{devices}{state_file}{saves},
       'devices: saves') or diag("$saves <= $psaves <= "
                                 . $j->{zones}{devices}{state_file}{saves});
    is($p->{'nginx_mpns_state_last_save_failed{zone=devices}'}, 0,
       'devices: last save worked');
    ok(!exists $p->{'nginx_mpns_state_saves_total{zone=obb}'},
       'obb: no state file');
    is($p->{'nginx_mpns_reloads_total{}'}, 0, 'no reload');

    my %types;
    for my $line (grep { /^# TYPE / } split /\n/, $prom_text) {
        my (undef, undef, $name, $type) = split ' ', $line;
        $types{$name} = $type;
    }

    is($types{nginx_mpns_response_time_seconds}, 'histogram',
       'a latency histogram');
    is(scalar(grep { $types{$_} eq 'counter' && !/_total$/ } keys %types),
       0, 'every counter ends in _total');
    is(scalar(grep { !/^nginx_mpns_/ } keys %types), 0,
       'every metric under nginx_mpns_');
}

###############################################################################

# the answer's format

{
    my $r = $t->http_get('/status');
    like($r->{headers}{'content-type'}, qr{^application/json$},
         'JSON by default');
    is($r->{headers}{vary}, 'Accept', 'Vary: Accept');
    is($r->{headers}{'cache-control'}, 'no-cache', 'not cached');

    $r = $t->http_get('/status', headers => [Accept => 'text/html,'
                      . 'application/xhtml+xml,*/*;q=0.8']);
    like($r->{headers}{'content-type'}, qr{^text/html; charset=utf-8$},
         'HTML for a browser');
    like($r->{body}, qr/<canvas id="c-rate">/, 'the dashboard');
    unlike($r->{body}, qr{(src|href)="?(https?:)?//}i,
           'the page loads nothing from elsewhere');

    $r = $t->http_get('/status', headers => [Accept => 'application/'
                      . 'openmetrics-text;version=1.0.0,text/plain;'
                      . 'version=0.0.4;q=0.5,*/*;q=0.1']);
    like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
         'Prometheus for a scraper');

    $r = $t->http_get('/status?format=prometheus',
                      headers => [Accept => 'text/html']);
    like($r->{headers}{'content-type'}, qr{^text/plain},
         'format= before Accept');
    is($r->{headers}{vary}, undef, 'no Vary with format=');

    $r = $t->http_get('/status?format=html');
    like($r->{headers}{'content-type'}, qr{^text/html}, 'format=html');

    $r = $t->http_get('/status?format=xml');
    is($r->{status}, 400, 'an unknown format: 400');
    is_deeply($r->{json}, { error => 'invalid value', field => 'format' },
              'an unknown format: the error');

    $r = $t->http('POST', '/status', body => 'x');
    is($r->{status}, 405, 'POST: 405');
    is($r->{headers}{allow}, 'GET, HEAD', 'Allow: GET, HEAD');

    $r = $t->http('HEAD', '/status');
    is($r->{status}, 200, 'HEAD: 200');
    is($r->{body}, '', 'HEAD: no body');

    is(util_dashboard(), slurp("$MpnsTest::ROOT/ngx_mpns_module/"
                               . "ngx_http_mpns_dashboard.c"),
       'ngx_http_mpns_dashboard.c is made from util/dashboard.html');
}

sub util_dashboard {
    my $root = $MpnsTest::ROOT;
    return scalar `$root/util/gen-dashboard $root/util/dashboard.html`;
}

###############################################################################

# the dashboard, in a browser

{
    my @cmd = chromium('--virtual-time-budget=10000', '--dump-dom',
                       'http://127.0.0.1:' . $t->port('http') . '/status');

    ok(@cmd, 'chromium is installed') or diag('util/install-deps test');

    my $dom = @cmd ? run_chromium(@cmd) : '';
    my $j = status();

    like($dom, qr/<body data-rendered="\d+"/, 'the script ran')
        or diag(slurp("$dir/chromium.log"));

    my %shown = $dom =~ /id="(t-[a-z-]+)">([^<]*)</g;
    (my $n = $j->{totals}{notifications}) =~ s/\B(?=(\d{3})+(?!\d))/,/g;

    is($shown{'t-notifications'}, $n, 'the dashboard: notifications');
    is($shown{'t-delivered'}, $j->{totals}{outcomes}{delivered},
       'the dashboard: delivered');
    is($shown{'t-attempts'}, $j->{totals}{attempts},
       'the dashboard: attempts');
    is($shown{'t-resumed'}, 1, 'the dashboard: resumed handshakes');

    my ($push) = $dom =~ m{(<tr data-loc="/push">.*?</tr>)}s;
    like($push // '', qr{<td data-k="notifications">13</td>},
         'the dashboard: /push notifications');
    like($push // '', qr{<td data-k="attempts">13</td>},
         'the dashboard: /push attempts');

    my $cr = '<tr data-outcome="certificate_rejected">'
             . '<td>certificate_rejected</td><td data-k="total">1</td>';
    like($dom, qr/\Q$cr\E/, 'the dashboard: an outcome');
    like($dom, qr{<tr data-zone="ob">.*?<td data-k="pending">1</td>}s,
         'the dashboard: the outbox');
    like($dom, qr{<tr data-zone="devices">.*?<td data-k="entries">3</td>}s,
         'the dashboard: the registry');
    like($dom, qr{<span id="health" class="badge">healthy</span>},
         'the dashboard: healthy');

    my $png = "$dir/dashboard.png";

    run_chromium(chromium('--virtual-time-budget=10000',
                          "--screenshot=$png",
                          'http://127.0.0.1:' . $t->port('http')
                          . '/status')) if @cmd;

    ok(-s $png && slurp($png) =~ /^\x89PNG/, 'a screenshot of it');

    if ($ENV{MPNS_SCREENSHOT} && -s $png) {
        system('cp', $png, $ENV{MPNS_SCREENSHOT});
    }
}

###############################################################################

# mpns_health

{
    my $r = $t->http_get('/health');
    is($r->{status}, 200, 'health: 200');
    is($r->{json}{status}, 'ok', 'health: ok');
    is_deeply([map { $r->{json}{$_}{ok} } qw(zones state_files mpns)],
              [JSON::PP::true, JSON::PP::true, JSON::PP::true],
              'health: every check ok');

    $r = $t->http('HEAD', '/health');
    is($r->{status}, 200, 'health: HEAD');

    # a full zone

    $t->tolerate(qr/mpns registry zone "small" is full/);

    my $full;
    for my $i (1 .. 2000) {
        $r = $t->post_json('/small', { channel => ch("fill-$i") });
        if ($r->{status} == 507) {
            $full = $i;
            last;
        }
    }

    ok($full, 'the small registry filled up');

    my $j = status();
    ok($j->{zones}{small}{full}, 'status: small is full');
    is($j->{zones}{small}{entries}, $full - 1, 'status: its entries');
    ok($j->{zones}{small}{used} > $j->{zones}{small}{size} / 2,
       'status: most of it used');

    $r = $t->http_get('/health');
    is($r->{status}, 503, 'health: 503 with a full zone');
    is($r->{json}{status}, 'failing', 'health: failing');
    is_deeply($r->{json}{zones}, { ok => JSON::PP::false,
                                   full => ['small'] },
              'health: the full zone named');

    like(prom(), qr/^nginx_mpns_zone_full\{zone="small",kind="registry"\} 1$/m,
         'prometheus: small is full');

    $r = $t->http('DELETE', '/small?channel=' . MpnsTest::uri_escape(
                  ch('fill-1')));
    is($r->{json}{deleted}, 1, 'an entry removed');

    ok(!status()->{zones}{small}{full}, 'status: no longer full');
    is($t->http_get('/health')->{status}, 200, 'health: 200 again');

    # a state file that cannot be replaced

    $t->tolerate(qr/rename\(\) .*devices\.ndjson.* failed/);

    make_path("$dir/devices.ndjson.dir");
    rename("$dir/devices.ndjson", "$dir/devices.ndjson.saved");
    rename("$dir/devices.ndjson.dir", "$dir/devices.ndjson") or die;
    make_path("$dir/devices.ndjson/x");

    $t->post_json('/channels', { channel => ch('active-s1') });

    ok($t->wait_for(sub {
        status()->{zones}{devices}{state_file}{last_failed}
    }, 5), 'status: the save failed');

    $j = status()->{zones}{devices}{state_file};
    ok($j->{failures} >= 1, 'status: failures counted');
    ok($j->{last_save} > $j->{last_success}, 'status: failed after success');

    $r = $t->http_get('/health');
    is($r->{status}, 503, 'health: 503 when a save failed');
    is_deeply($r->{json}{state_files}, { ok => JSON::PP::false,
                                         failed => ['devices'] },
              'health: the state file named');

    remove_tree("$dir/devices.ndjson");

    ok($t->wait_for(sub {
        !status()->{zones}{devices}{state_file}{last_failed}
    }, 10), 'status: saved again');
    is($t->http_get('/health')->{status}, 200, 'health: 200 again');

    # MPNS not answering

    my $closed = $t->port('closed');

    for my $i (1 .. 4) {
        send_to('/push', "http://127.0.0.1:$closed/t/x-$i");
    }

    $r = $t->http_get('/health');
    is($r->{status}, 200, 'health: 4 unanswered sends are not enough');
    is($r->{json}{mpns}{unanswered}, 4, 'health: 4 in a row');

    is(send_to('/push', "http://127.0.0.1:$closed/t/x-5"),
       'transport_error', 'a fifth');

    $r = $t->http_get('/health');
    is($r->{status}, 503, 'health: 503 after 5 unanswered sends');
    ok(!$r->{json}{mpns}{ok}, 'health: mpns not ok');
    is(status()->{mpns}{unanswered}, 5, 'status: 5 unanswered');

    is(send_to('/push', ch('active-r')), 'delivered', 'MPNS answers');

    $r = $t->http_get('/health');
    is($r->{status}, 200, 'health: 200 once MPNS answers');
    is($r->{json}{mpns}{unanswered}, 0, 'health: none unanswered');
}

sub prom { $t->http_get('/status?format=prometheus')->{body} }

###############################################################################

# consistent answers while sends run on two workers; then a reload

(my $conf2 = $conf) =~ s/^/worker_processes 2;\n/;

$t->restart($conf2);

my $before = () = $t->access_log_lines('st.log');

is(status()->{totals}{notifications}, 0, 'a restart starts from zero');

{
    my $want = 0;
    my (%pids, @bad, $answers);

    for my $round (1 .. 10) {
        my @socks = map {
            $t->push_toast_start(ch("slow100-$round-$_"), uri => '/push')
        } 1 .. 12;

        $want += @socks;

        # the status, while they run

        my $end = time + 0.3;

        while (time < $end) {
            my $j = status();
            $answers++;

            my $tt = $j->{totals};
            my $sum = 0;
            $sum += $_ for values %{$tt->{outcomes}};

            my $by_type = 0;
            for my $ty (values %{$tt->{types}}) {
                $by_type += $_ for values %$ty;
            }

            my $locs = 0;
            $locs += $_->{notifications} for values %{$j->{locations}};

            my $bk = $tt->{response_time}{buckets};
            my @cum = map { $bk->{$_} } sort { $a <=> $b } grep { /\d/ }
                      keys %$bk;

            push @bad, "outcomes $sum != $tt->{notifications}"
                if $sum != $tt->{notifications};
            push @bad, "types $by_type != $tt->{notifications}"
                if $by_type != $tt->{notifications};
            push @bad, "locations $locs != $tt->{notifications}"
                if $locs != $tt->{notifications};
            push @bad, "count $tt->{response_time}{count} != +Inf"
                if $tt->{response_time}{count} != $bk->{'+Inf'};
            push @bad, "buckets not cumulative: @cum"
                if grep { $cum[$_] > $cum[$_ + 1] } 0 .. $#cum - 1;
            push @bad, "in flight $tt->{in_flight}"
                if $tt->{in_flight} < 0 || $tt->{in_flight} > 12;
        }

        for my $s (@socks) {
            my $r = $t->http_response($s);
            close $s;
            push @bad, "send: " . ($r->{status} // 'none')
                if ($r->{status} // 0) != 200;
        }

        my @lines = $t->access_log_lines('st.log');
        %pids = map { (split ' ')[-1] => 1 } @lines[$before .. $#lines];

        last if keys %pids == 2 && $round >= 2;
    }

    is("@bad", '', "$answers status answers during sends: consistent");

    is(scalar keys %pids, 2, 'both workers sent');

    my $j = status();
    is($j->{totals}{notifications}, $want, "all $want sends counted");
    is($j->{totals}{outcomes}{delivered}, $want, 'all delivered');
    is($j->{totals}{in_flight}, 0, 'none in flight');

    # every worker answers the same

    my %by_pid;
    for (1 .. 20) {
        my $s = status();
        $by_pid{$s->{pid}} = $s->{totals}{notifications};
        last if keys %by_pid == 2;
    }

    is(join(',', values %by_pid), join(',', ($want) x keys %by_pid),
       'the same totals from every worker');

    # a reload keeps them; a background send the new configuration no
    # longer allows is refused

    my $r = $t->post_json('/bg', { channel => "http://localhost:$sim/t/lh",
                                   text1 => 'x', delay => 3 });
    is($r->{status}, 202, 'a background send to localhost, in 3 s');

    (my $conf3 = $conf2) =~ s/ \^\(localhost\)\$//;
    $t->write_conf($conf3);
    $t->reload;

    $j = status();
    is($j->{reloads}, 1, 'reloaded once');
    is($j->{locations}{'/push'}{notifications}, $want, 'the counters kept');
    ok($j->{totals}{notifications} >= $want, 'the totals kept');

    is(send_to('/push', ch('active-after')), 'delivered', 'one more send');
    is(status()->{locations}{'/push'}{notifications}, $want + 1,
       'counted after it');

    ok($t->wait_for(sub {
        status()->{locations}{'/bg'}{outcomes}{refused} == 1
    }, 10), 'the background send to localhost refused, and counted');
    is($t->http_get("/bg/$r->{json}{id}")->{json}{outcome}, 'refused',
       'its outcome');
    is(prom_parse(prom())->{'nginx_mpns_reloads_total{}'}, 1,
       'prometheus: 1 reload');
}

###############################################################################

# a status zone too small for all the locations

{
    my $locs = join '', map { "location = /p$_ { mpns_send; }\n" } 1 .. 40;

    $t->tolerate(qr/mpns status zone "mpns_status" is full: no figures/);
    $t->log_mark;

    $t->restart(http_conf(<<"EOF_CONF"));

    mpns_allowed_hosts ^127\\.0\\.0\\.1\$;
    mpns_status_zone 32k;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        $locs

        location = /status {
            mpns_status;
        }
    }

EOF_CONF

    my $full = 'mpns status zone "mpns_status" is full';
    my @crit = $t->error_log_lines(qr/\[crit\].*\Q$full\E/);
    ok(@crit, 'a full status zone is logged') or diag($t->error_log);

    my $j = status();
    my $n = keys %{$j->{locations}};

    ok($n > 0 && $n < 40, "figures for $n of 40 locations");
    ok($j->{zones}{mpns_status}{full}, 'the status zone is full');
    is($j->{zones}{mpns_status}{size}, 32768, 'of 32k');

    is(send_to('/p40', ch('active-p40')), 'delivered',
       'a location without figures still sends');
    is(status()->{totals}{notifications}, 0, 'not counted');
    is(send_to('/p1', ch('active-p1')), 'delivered', 'one with figures');
    is(status()->{totals}{notifications}, 1, 'counted');
}

###############################################################################

# mistakes

for my $case (
    ['mpns_status_zone 1k;', 'zone "1k" is too small'],
    ['mpns_status_zone big;', 'invalid zone size "big"'],
    ["mpns_status_zone 1m;\n    mpns_status_zone 1m;",
     '"mpns_status_zone" directive is duplicate'],
    ['server { location / { mpns_status; mpns_status; } }',
     '"mpns_status" directive is duplicate'],
    ['server { location / { mpns_status; mpns_health; } }',
     '"mpns_health" directive is duplicate'],
    ['server { location / { mpns_status on; } }',
     'invalid number of arguments in "mpns_status" directive'],
    ['server { mpns_status_zone 1m; }',
     '"mpns_status_zone" directive is not allowed here'])
{
    my ($rc, $out) = $t->nginx_test(http_conf("    $case->[0]\n"));
    isnt($rc, 0, "refused: $case->[0]");
    like($out, qr/\[emerg\] \Q$case->[1]\E/, "says: $case->[1]");
}

$t->done;

done_testing;
