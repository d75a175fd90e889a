#!/usr/bin/perl

# Configuration of ngx_http_mpns_module (docs/directives.md): every
# configuration mistake is refused by "nginx -t" with its exact [emerg]
# text, a configuration using every directive is accepted, and the
# documented size defaults hold at run time.

use strict;
use warnings;

use Test::More;

use JSON::PP;

use lib 't/lib';
use MpnsTest qw(http_conf);

my $t = MpnsTest->new;

$t->certs;

###############################################################################

# nginx -t on a configuration with $http, $server and $location inserted at
# the three levels; returns (exit code, the [emerg] message of this run
# without " in FILE:LINE", the whole output).  The message is taken from
# nginx's own stderr ("nginx: [emerg] ..."), which only this run wrote.
sub conf_test {
    my (%at) = @_;

    my ($h, $s, $l) = map { $_ // '' } @at{qw(http server location)};

    my ($rc, $out) = $t->nginx_test(http_conf(<<"EOF_CONF"));

    mpns_allowed_hosts ^127\\.0\\.0\\.1\$;
    mpns_registry_zone zone=r:1m;
    $h

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;
        $s

        location = /push {
            mpns_send;
        }

        location = /x {
            $l
        }
    }

EOF_CONF

    my ($msg) = $out =~ /^nginx: \[emerg\] (.*) in \S+\.conf:\d+$/m;

    return ($rc, $msg, $out);
}

# a configuration mistake: non-zero exit and exactly $text
sub refused {
    my ($where, $directive, $text, $name) = @_;

    my ($rc, $msg, $out) = conf_test($where => $directive);

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        isnt($rc, 0, 'nginx -t fails');
        is($msg, $text, 'emerg text') or diag($out);
    };
}

###############################################################################

# mistakes

refused(location => 'mpns_send bogus;',
        'invalid parameter "bogus"', 'mpns_send with an unknown type');
refused(location => 'mpns_send; mpns_send toast;',
        '"mpns_send" directive is duplicate', 'mpns_send twice');
refused(server => 'mpns_send;',
        '"mpns_send" directive is not allowed here',
        'mpns_send at server level');
refused(http => 'mpns_send;',
        '"mpns_send" directive is not allowed here',
        'mpns_send at http level');
refused(location => 'mpns_field bogus x;',
        'unknown mpns field "bogus"', 'mpns_field with an unknown name');
refused(location => 'mpns_field text1 a; mpns_field text1 b;',
        'duplicate mpns field "text1"', 'mpns_field twice for one name');
refused(server => 'mpns_field text1 a; mpns_field text1 b;',
        'duplicate mpns field "text1"',
        'mpns_field twice for one name at server level');
refused(location => 'mpns_allowed_hosts a; mpns_allowed_hosts b;',
        '"mpns_allowed_hosts" directive is duplicate',
        'mpns_allowed_hosts twice on one level');
refused(location => 'mpns_allowed_addresses public; '
                    . 'mpns_allowed_addresses all;',
        '"mpns_allowed_addresses" directive is duplicate',
        'mpns_allowed_addresses twice on one level');
refused(location => 'mpns_allowed_addresses 10.0.0.0/33;',
        'invalid parameter "10.0.0.0/33"',
        'mpns_allowed_addresses with a bad prefix length');
refused(location => 'mpns_allowed_addresses public anywhere;',
        'invalid parameter "anywhere"',
        'mpns_allowed_addresses with an unknown word');
refused(location => 'mpns_allowed_ports 80; mpns_allowed_ports 443;',
        '"mpns_allowed_ports" directive is duplicate',
        'mpns_allowed_ports twice on one level');
for my $port ('0', '65536', '443-80', '80-', '-80', 'http', '1-65536') {
    refused(location => "mpns_allowed_ports 80 $port;",
            qq{invalid parameter "$port"}, "mpns_allowed_ports $port");
}
refused(location => 'mpns_response_timeout abc;',
        '"mpns_response_timeout" directive invalid value',
        'mpns_response_timeout abc');
refused(http => 'mpns_keepalive -1;',
        '"mpns_keepalive" directive invalid number',
        'mpns_keepalive -1');
refused(http => 'mpns_keepalive abc;',
        '"mpns_keepalive" directive invalid number',
        'mpns_keepalive abc');
refused(http => 'mpns_keepalive 1; mpns_keepalive 2;',
        '"mpns_keepalive" directive is duplicate', 'mpns_keepalive twice');
refused(location => 'mpns_keepalive 1;',
        '"mpns_keepalive" directive is not allowed here',
        'mpns_keepalive in a location');
refused(server => 'mpns_keepalive 1;',
        '"mpns_keepalive" directive is not allowed here',
        'mpns_keepalive in a server');
refused(location => 'mpns_keepalive_timeout 1s;',
        '"mpns_keepalive_timeout" directive is not allowed here',
        'mpns_keepalive_timeout in a location');
refused(location => 'mpns_connect_timeout abc;',
        '"mpns_connect_timeout" directive invalid value',
        'mpns_connect_timeout abc');
refused(location => 'mpns_send_timeout abc;',
        '"mpns_send_timeout" directive invalid value',
        'mpns_send_timeout abc');
refused(location => 'mpns_read_timeout abc;',
        '"mpns_read_timeout" directive invalid value',
        'mpns_read_timeout abc');
refused(http => 'mpns_keepalive_timeout abc;',
        '"mpns_keepalive_timeout" directive invalid value',
        'mpns_keepalive_timeout abc');
refused(location => 'mpns_max_payload_size x;',
        '"mpns_max_payload_size" directive invalid value',
        'mpns_max_payload_size x');
refused(location => 'mpns_max_body_size x;',
        '"mpns_max_body_size" directive invalid value',
        'mpns_max_body_size x');

refused(location => 'mpns_concurrency 0;',
        'value must be between 1 and 65535', 'mpns_concurrency 0');
refused(location => 'mpns_concurrency 65536;',
        'value must be between 1 and 65535', 'mpns_concurrency 65536');
refused(location => 'mpns_concurrency x;',
        '"mpns_concurrency" directive invalid number', 'mpns_concurrency x');
refused(http => 'mpns_worker_concurrency 0;',
        'value must be between 1 and 65535', 'mpns_worker_concurrency 0');
refused(location => 'mpns_rate 1000001;',
        'value must be between 0 and 1000000', 'mpns_rate too high');
refused(location => 'mpns_rate fast;', '"mpns_rate" directive invalid number',
        'mpns_rate fast');
refused(location => 'mpns_worker_concurrency 10;',
        '"mpns_worker_concurrency" directive is not allowed here',
        'mpns_worker_concurrency in a location');
refused(location => 'mpns_report_failures 10001;',
        'value must be between 0 and 10000', 'mpns_report_failures 10001');
refused(location => 'mpns_remove_expired maybe;',
        'invalid value "maybe" in "mpns_remove_expired" directive, '
        . 'it must be "on" or "off"', 'mpns_remove_expired maybe');
refused(location => 'mpns_broadcast nope;',
        'unknown mpns_registry_zone "nope"',
        'mpns_broadcast of an undeclared registry');
refused(location => 'mpns_broadcast r bogus;',
        'invalid parameter "bogus"', 'mpns_broadcast with an unknown type');
refused(location => 'mpns_broadcast r; mpns_send;',
        '"mpns_send" directive is duplicate', 'mpns_broadcast and mpns_send');
refused(location => 'mpns_send; mpns_broadcast r;',
        '"mpns_broadcast" directive is duplicate',
        'mpns_send and mpns_broadcast');
refused(location => 'mpns_broadcast r; mpns_broadcast r;',
        '"mpns_broadcast" directive is duplicate', 'mpns_broadcast twice');
refused(server => 'mpns_broadcast r;',
        '"mpns_broadcast" directive is not allowed here',
        'mpns_broadcast at server level');

# host bits set in a CIDR block: nginx's own warning, as for "allow"

{
    my ($rc, $msg, $out) = conf_test(
        location => 'mpns_allowed_addresses 127.0.0.1/8;');

    subtest 'mpns_allowed_addresses with host bits set' => sub {
        is($rc, 0, 'nginx -t succeeds');
        like($out, qr/\[warn\] .*low address bits of 127\.0\.0\.1\/8 are meaningless/,
             'warned') or diag($out);
    };
}

# the PCRE message itself comes from the library: assert its frame

{
    my ($rc, $msg, $out) = conf_test(location => 'mpns_allowed_hosts (;');

    subtest 'mpns_allowed_hosts with an invalid regex' => sub {
        isnt($rc, 0, 'nginx -t fails');
        like($msg // '', qr/^pcre2_compile\(\) failed: .+ in "\("/,
             'emerg names pcre2_compile() and the pattern') or diag($out);
    };
}

{
    my ($rc, $msg, $out) = conf_test(
        location => 'mpns_allowed_hosts ^a$ "(b";');

    subtest 'mpns_allowed_hosts: the second regex invalid' => sub {
        isnt($rc, 0, 'nginx -t fails');
        like($msg // '', qr/^pcre2_compile\(\) failed: .+ in "\(b"/,
             'emerg names the bad pattern') or diag($out);
    };
}

# a configuration with every directive, on every level it is allowed on

{
    my ($rc, $out) = $t->nginx_test(http_conf(<<'EOF_CONF'));

    log_format mpns '$mpns_action $mpns_attempts $mpns_channel '
                    '$mpns_device_connection_status $mpns_error '
                    '$mpns_message_id $mpns_notification_status '
                    '$mpns_outcome $mpns_response_time $mpns_status '
                    '$mpns_subscription_status $mpns_sent $mpns_delivered '
                    '$mpns_expired $mpns_failed';

    resolver 127.0.0.1:53 valid=30s ipv6=off;

    mpns_keepalive 16;
    mpns_keepalive_timeout 30s;
    mpns_worker_concurrency 500;
    mpns_registry_zone zone=devices:1m state=%%TESTDIR%%/devices.ndjson;
    mpns_concurrency 50;
    mpns_remove_expired off;
    mpns_report_failures 20;

    mpns_ssl_certificate %%CERTS%%/client-a.crt;
    mpns_ssl_certificate_key %%CERTS%%/client-a.key;
    mpns_ssl_trusted_certificate %%CERTS%%/ca.crt;
    mpns_ssl_verify on;
    mpns_ssl_protocols TLSv1.2 TLSv1.3;
    mpns_ssl_ciphers HIGH:!aNULL;
    mpns_ssl_server_name on;
    mpns_proxy http://127.0.0.1:3128;

    mpns_allowed_hosts ^127\.0\.0\.1$ (^|\.)notify\.live\.net$;
    mpns_channel $arg_channel;
    mpns_field text2 "from http";
    mpns_connect_timeout 5s;
    mpns_send_timeout 5s;
    mpns_read_timeout 5s;
    mpns_max_payload_size 2k;
    mpns_max_body_size 32k;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        access_log %%TESTDIR%%/mpns.log mpns;

        mpns_allowed_hosts \.test$;
        mpns_allowed_addresses public 192.0.2.0/24 2001:db8::/32 10.0.0.1;
        mpns_allowed_ports 80 443 8000-8999;
        mpns_response_timeout 10s;
        mpns_channel "";
        mpns_field class 450;
        mpns_connect_timeout 1s;
        mpns_send_timeout 1s;
        mpns_read_timeout 1s;
        mpns_max_payload_size 1k;
        mpns_max_body_size 16k;
        mpns_concurrency 20;
        mpns_remove_expired on;
        mpns_report_failures 0;

        mpns_ssl_certificate %%CERTS%%/client-b.crt;
        mpns_ssl_certificate_key %%CERTS%%/client-b.key;
        mpns_ssl_verify off;
        mpns_ssl_server_name off;
        mpns_proxy off;

        location = /push {
            mpns_send;
        }

        location = /channels {
            mpns_registry devices;
        }

        location = /broadcast {
            mpns_broadcast devices;
            mpns_concurrency 10;
            mpns_remove_expired off;
            mpns_report_failures 5;
        }

        location = /broadcast/toast {
            mpns_broadcast devices toast;
        }

        location = /callback {
            mpns_send callback;
            mpns_ssl_certificate %%CERTS%%/client-a.crt;
            mpns_ssl_certificate_key %%CERTS%%/client-a-enc.key;
            mpns_ssl_password_file %%CERTS%%/password.txt;
            mpns_ssl_protocols TLSv1.3;
            mpns_ssl_ciphers DEFAULT;
            mpns_ssl_trusted_certificate %%CERTS%%/untrusted-ca.crt;
            mpns_proxy http://localhost:8080/;
        }

        location = /toast {
            mpns_send toast;
            mpns_channel http://127.0.0.1:%%SIM_PORT%%/t/a;
            mpns_field text1 "Order shipped";
            mpns_field text2 $arg_order;
            mpns_field param /Page.xaml?id=7;
            mpns_field silent on;
            mpns_allowed_hosts ^127\.0\.0\.1$;
            mpns_allowed_addresses all;
            mpns_allowed_ports 1-65535;
            mpns_response_timeout 0;
            mpns_connect_timeout 300ms;
            mpns_send_timeout 300ms;
            mpns_read_timeout 300ms;
            mpns_max_payload_size 512;
            mpns_max_body_size 4k;
            add_header X-Outcome $mpns_outcome;
        }

        location = /tile    { mpns_send tile;   mpns_field clear title,count; }
        location = /flip    { mpns_send flip;   mpns_field back_title x; }
        location = /cycle   { mpns_send cycle;  mpns_field cycle_image1 a; }
        location = /iconic {
            mpns_send iconic;
            mpns_field background_color "#FF00FF00";
        }
        location = /raw     { mpns_send raw; }
    }

EOF_CONF

    subtest 'every directive: configuration accepted' => sub {
        is($rc, 0, 'nginx -t succeeds');
        like($out, qr/syntax is ok/, 'syntax is ok');
        like($out, qr/test is successful/, 'test is successful');
    } or diag($out);
}

###############################################################################

# the documented size defaults, at run time

$t->sim_start;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /push {
            mpns_send;
        }

        location = /raw {
            mpns_send raw;
            mpns_channel http://127.0.0.1:%%SIM_PORT%%/t/raw-1;
        }
    }

EOF_CONF

$t->run;

my $r;

# mpns_max_payload_size 1k

$t->sim_reset;
$r = $t->http('POST', '/raw', body => 'x' x 1025,
              headers => ['Content-Type' => 'text/plain']);
is($r->{status}, 413, 'default payload limit: 1025-byte raw payload is 413');
is_deeply($r->{json}, { error => 'payload too large', field => 'payload' },
          'default payload limit: error body');
is(scalar @{$t->sim_requests}, 0, 'default payload limit: nothing sent');

$r = $t->http('POST', '/raw', body => 'y' x 1024,
              headers => ['Content-Type' => 'text/plain']);
is($r->{status}, 200, 'default payload limit: 1024-byte raw payload sent');
is(($r->{json} // {})->{outcome}, 'delivered',
   'default payload limit: 1024 bytes delivered');
is(join('', map { $_->{body} } @{$t->sim_requests}), 'y' x 1024,
   'default payload limit: payload byte-exact');

# mpns_max_body_size 16k

# a toast padded with JSON whitespace to $len bytes
sub padded_toast {
    my ($len) = @_;
    my $json = JSON::PP->new->canonical->encode(
        { channel => $t->sim_url('/t/body-1'), type => 'toast',
          text1 => 'Hi' });
    return $json . (' ' x ($len - length $json));
}

$t->sim_reset;
$r = $t->post_json('/push', padded_toast(16385));
is($r->{status}, 413, 'default body limit: 16385-byte body is 413');
is_deeply($r->{json}, { error => 'request body too large', field => 'body' },
          'default body limit: error body');
is(scalar @{$t->sim_requests}, 0, 'default body limit: nothing sent');

# the same without Content-Length: the limit holds for a chunked body too
{
    my $raw = $t->http('POST', '/push',
                       headers => ['Content-Type' => 'application/json'],
                       chunks => [padded_toast(16385)])->{raw};

    like($raw, qr{^HTTP/1\.1 413 },
         'default body limit: 16385-byte chunked body is 413');
    like($raw, qr/"error":"request body too large"/,
         'default body limit: chunked error body');
    is(scalar @{$t->sim_requests}, 0, 'default body limit: chunked not sent');
}

$r = $t->post_json('/push', padded_toast(16384));
is($r->{status}, 200, 'default body limit: 16384-byte body accepted');
is(($r->{json} // {})->{outcome}, 'delivered',
   'default body limit: 16384-byte body delivered');

is(join("\n", $t->error_log_lines('error')), '', 'no [error] lines');

###############################################################################

###############################################################################

# the documentation keeps up with the code: every directive of the command
# tables has its section with Syntax, Default and Context, and every
# variable is described

{
    # the command tables: the sender's and the tile module's
    my $src = join('', map { MpnsTest::slurp($_) }
                           glob 'ngx_mpns_module/ngx_http_mpns*_module.c');
    my $vars = MpnsTest::slurp('ngx_mpns_module/ngx_http_mpns_variables.c');
    my $doc = MpnsTest::slurp('docs/directives.md');

    my @directives = $src =~ /\{ ngx_string\("(mpns_\w+)"\),\n\s+NGX_HTTP_/g;
    my @variables = $vars =~ /\{ ngx_string\("(mpns_\w+)"\), NULL,/g;

    ok(@directives > 20, scalar(@directives) . ' directives in the code');
    ok(@variables > 10, scalar(@variables) . ' variables in the code');

    for my $d (@directives) {
        my ($section) = $doc =~ /^### \Q$d\E\n(.*?)(?=^##)/ms;

        ok($section && $section =~ /^\*\*Syntax:\*\* `\Q$d\E[ ;]/m
           && $section =~ /^\*\*Default:\*\* /m
           && $section =~ /^\*\*Context:\*\* /m,
           "$d: documented with Syntax, Default and Context");
    }

    my %code = map { $_ => 1 } @directives;
    my @documented = $doc =~ /^### (mpns_\w+)$/mg;

    is_deeply([grep { !$code{$_} } @documented], [],
              'no documented directive is missing from the code');

    for my $v (@variables) {
        like($doc, qr/^`\$\Q$v\E`$/m, "\$$v documented");
    }
}

$t->done;
done_testing;
