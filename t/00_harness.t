#!/usr/bin/perl

# Self-test of t/lib/MpnsTest.pm: ports, "nginx -t", start/reload of a
# plain nginx with the module loaded, simulator control and byte-exact
# recording.  Needs no module features.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use MpnsTest qw(http_conf);

my $t = MpnsTest->new;

my %ports = map { $_ => $t->port($_) } qw(http sim a b);

is(scalar(keys %{{ reverse %ports }}), 4, 'ports are distinct');
is($t->port('a'), $ports{a}, 'port is stable per name');

my ($r, $rc, $out);

($rc, $out) = $t->nginx_test(<<'EOF_CONF');

%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%
}

EOF_CONF

is($rc, 0, 'nginx -t with the module loaded') or diag($out);

# the version of the binary under test, for what differs between versions
like($t->nginx_version, qr/^\d+\.\d+\.\d+$/, 'nginx version');
ok($t->has_version('1.22.1'), 'has_version: 1.22.1, the oldest supported');
ok($t->has_version($t->nginx_version), 'has_version: its own');
ok(!$t->has_version('999.0.0'), 'has_version: not a future one');
{
    my ($maj, $min, $pat) = split /\./, $t->nginx_version;
    ok(!$t->has_version(join '.', $maj, $min, $pat + 1),
       'has_version: not the next patch');
    ok($t->has_version(join '.', $maj, $min - 1, $pat + 10),
       'has_version: compares numbers, not digits');
}

($rc, $out) = $t->nginx_test(http_conf(<<'EOF_CONF'));

    no_such_directive;

EOF_CONF

isnt($rc, 0, 'nginx -t fails on a bad config');
like($out, qr/\[emerg\] unknown directive "no_such_directive"/,
     'nginx -t output has the emerg line');

$t->write_conf(http_conf(<<'EOF_CONF'));

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location /json {
            default_type  application/json;
            return        200 '{"ok":true,"n":[1,2]}';
        }

        location / {
            return  200 "hello";
        }
    }

EOF_CONF

$t->run;

$r = $t->http_get('/');
is($r->{status}, 200, 'nginx answers');
is($r->{body}, 'hello', 'response body');

$r = $t->post_json('/json', { a => 1 });
is_deeply($r->{json}, { ok => JSON::PP::true, n => [1, 2] },
          'json response is decoded');

my @workers = $t->worker_pids;
is(scalar @workers, 1, 'one worker');

$t->reload;
isnt(join(' ', $t->worker_pids), join(' ', @workers),
     'reload replaces the worker');
is($t->http_get('/')->{status}, 200, 'nginx answers after reload');

$t->sim_start;

my $toast = '<?xml version="1.0" encoding="utf-8"?>'
            . '<wp:Notification xmlns:wp="WPNotification"><wp:Toast>'
            . '<wp:Text1>Hello</wp:Text1></wp:Toast></wp:Notification>';

$t->sim_reset;

$r = $t->http('POST', '/throttledthirdparty/01.00/AAF',
                 port => $t->sim_port,
                 headers => ['Content-Type' => 'text/xml',
                             'X-WindowsPhone-Target' => 'toast',
                             'X-NotificationClass' => '2'],
                 body => $toast);

is($r->{status}, 200, 'simulator accepts a toast');
is($r->{headers}{'x-notificationstatus'}, 'Received',
   'simulator answers Received');

my $reqs = $t->sim_requests;

is(scalar @$reqs, 1, 'simulator recorded one request');
is($reqs->[0]{method}, 'POST', 'recorded method');
is($reqs->[0]{target}, '/throttledthirdparty/01.00/AAF', 'recorded target');
is($reqs->[0]{body}, $toast, 'recorded body is byte-exact');
is($reqs->[0]{hdr}{'x-windowsphone-target'}, 'toast',
   'recorded X-WindowsPhone-Target');
is($reqs->[0]{hdr}{'x-notificationclass'}, '2',
   'recorded X-NotificationClass');

ok($t->sim_stats->{requests} >= 1, 'simulator stats count the request');

$t->sim_reset;
is(scalar @{$t->sim_requests}, 0, 'reset forgets recorded requests');

is(join("\n", $t->error_log_lines('error')), '', 'no [error] lines');

$t->done;
done_testing;
