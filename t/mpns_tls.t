#!/usr/bin/perl

# Authenticated MPNS (docs/authenticated.md): https channels with client
# certificates; server verification on and off; SNI for names and none for
# addresses; a certificate MPNS does not accept, at the HTTP level (403)
# and at the TLS level; two certificate profiles on one host never sharing
# a connection; TLS session resumption; callback registration; mpns_proxy
# for http and https channels; a reload with TLS connections in the cache;
# the configuration mistakes.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

use lib 't/lib';
use MpnsTest qw(http_conf);

my $t = MpnsTest->new;

$t->sim_start(tls => 1, strict => 1, proxy => 1, client_ca => 1, dns => 1);

my $C = $t->certs;

$t->write_conf(http_conf(<<'EOF_CONF'));

    resolver 127.0.0.1:%%DNS_PORT%% valid=60s ipv6=off;

    mpns_allowed_hosts ^127\.0\.0\.1$ \.test$;
    mpns_ssl_trusted_certificate %%CERTS%%/ca.crt;

    mpns_keepalive 16;
    mpns_keepalive_timeout 1s;

    log_format tls '$mpns_outcome $mpns_status';

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        access_log %%TESTDIR%%/tls.log tls;

        mpns_ssl_certificate %%CERTS%%/client-a.crt;
        mpns_ssl_certificate_key %%CERTS%%/client-a.key;

        location = /a {
            mpns_send;
        }

        location = /b {
            mpns_send;
            mpns_ssl_certificate %%CERTS%%/client-b.crt;
            mpns_ssl_certificate_key %%CERTS%%/client-b.key;
        }

        location = /none {
            mpns_send;
            mpns_ssl_certificate "";
            mpns_ssl_certificate_key "";
        }

        location = /rogue {
            mpns_send;
            mpns_ssl_certificate %%CERTS%%/rogue.crt;
            mpns_ssl_certificate_key %%CERTS%%/rogue.key;
        }

        location = /encrypted {
            mpns_send;
            mpns_ssl_certificate_key %%CERTS%%/client-a-enc.key;
            mpns_ssl_password_file %%CERTS%%/password.txt;
        }

        location = /noverify {
            mpns_send;
            mpns_ssl_verify off;
        }

        location = /untrusting {
            mpns_send;
            mpns_ssl_trusted_certificate %%CERTS%%/untrusted-ca.crt;
        }

        location = /nosni {
            mpns_send;
            mpns_ssl_server_name off;
        }

        location = /tls12 {
            mpns_send;
            mpns_ssl_protocols TLSv1.2;
            mpns_ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;
        }

        location = /mismatch {
            mpns_send;
            mpns_ssl_protocols TLSv1.2;
            mpns_ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;
        }

        location = /proxied {
            mpns_send;
            mpns_proxy http://127.0.0.1:%%PROXY_PORT%%;
        }

        location = /callback {
            mpns_send callback;
        }
    }

EOF_CONF

$t->run;

my $tls = $t->port('sim_tls');
my $strict = $t->port('sim_tls_strict');
my $sim = $t->sim_port;

sub https { "https://$_[1]:" . ($_[2] // $tls) . "/unthrottledthirdparty/01.00/$_[0]" }

sub send_to {
    my ($uri, $channel, %f) = @_;
    return $t->post_json($uri, { channel => $channel, type => 'toast',
                                 text1 => 'Hi', %f });
}

sub last_record { $t->sim_requests->[-1] // {} }

sub outcome {
    my ($r) = @_;
    return ($r->{status} // 'none') . ' '
           . ($r->{json} ? $r->{json}{outcome} // 'none' : 'no-json');
}

###############################################################################

subtest 'an https channel with a client certificate' => sub {
    $t->sim_reset;

    my $r = send_to('/a', https('active-1', '127.0.0.1'));
    is(outcome($r), '200 delivered', 'delivered');

    my $rec = last_record();
    ok($rec->{tls}, 'over TLS');
    is($rec->{client_cn}, 'service-a.example', 'with client-a');
    is($rec->{sni}, undef, 'no SNI for an address');
    is($rec->{hdr}{host}, "127.0.0.1:$tls", 'Host as in the channel');
};

subtest 'SNI' => sub {
    $t->sim_reset;

    is(outcome(send_to('/a', https('active-2', 'mpns.test'))),
       '200 delivered', 'by name');
    is(last_record()->{sni}, 'mpns.test', 'the name is sent');

    is(outcome(send_to('/a', https('active-3', 'other.test'))),
       '200 delivered', 'another name, another certificate');
    is(last_record()->{sni}, 'other.test', 'other.test sent');

    is(outcome(send_to('/nosni', https('active-4', 'db3.notify.live.test'))),
       '200 delivered', 'mpns_ssl_server_name off');
    is(last_record()->{sni}, undef, 'no name sent');
};

subtest 'an encrypted key and its password file' => sub {
    is(outcome(send_to('/encrypted', https('active-5', '127.0.0.1'))),
       '200 delivered', 'delivered');
    is(last_record()->{client_cn}, 'service-a.example', 'with client-a');
};

subtest 'mpns_ssl_protocols and mpns_ssl_ciphers' => sub {
    is(outcome(send_to('/tls12', https('active-6', '127.0.0.1'))),
       '200 delivered', 'TLSv1.2 with one cipher');
};

###############################################################################

# each failure: its outcome, its answer and one clear log line

sub failure {
    my ($name, $uri, $channel, $want, $log) = @_;

    subtest $name => sub {
        $t->log_mark;

        my $r = send_to($uri, $channel);
        is(outcome($r), $want, $want);
        is($r->{json}{attempts}, 1, 'one attempt');

        if ($log) {
            my @l = $t->log_since(qr/\[error\].*\Q$log\E/);
            is(scalar @l, 1, "one log line: $log")
                or diag(join "\n", $t->log_since('error'));
        }
    };
}

failure('no client certificate: MPNS answers 403', '/none',
        https('active-7', '127.0.0.1'), '403 forbidden');
failure('a certificate of another CA: 403', '/rogue',
        https('active-8', '127.0.0.1'), '403 forbidden');
failure('no client certificate, refused in the handshake', '/none',
        https('active-9', '127.0.0.1', $strict),
        '502 certificate_rejected',
        'mpns server refused the client certificate');
failure('a certificate of another CA, refused in the handshake', '/rogue',
        https('active-10', '127.0.0.1', $strict),
        '502 certificate_rejected',
        "mpns server refused the client certificate $C/rogue.crt");
failure('a server certificate we do not trust', '/untrusting',
        https('active-11', '127.0.0.1'), '502 tls_verify_failed',
        'mpns server SSL certificate verify error');
failure('a server certificate for another name', '/a',
        https('active-12', 'nomatch.test'), '502 tls_verify_failed',
        'mpns server SSL certificate does not match "nomatch.test"');
failure('no cipher in common', '/mismatch',
        https('active-13', '127.0.0.1'), '502 tls_handshake_failed',
        'SSL_do_handshake() failed');

is(outcome(send_to('/noverify', https('active-14', 'nomatch.test'))),
   '200 delivered', 'mpns_ssl_verify off: the same name is accepted');

is(outcome(send_to('/a', https('active-15', '127.0.0.1', $strict))),
   '200 delivered', 'the strict listener takes client-a');

is($t->post_json('/a', { channel => https('x', '127.0.0.1'), type => 'toast',
                         text1 => 'Hi' })->{json}{action},
   'none', 'actions: delivered');

{
    my %action = (
        tls_verify_failed => 'check_server',
        certificate_rejected => 'check_certificate',
        tls_handshake_failed => 'retry',
    );

    my %got;
    $got{send_to('/untrusting', https('a-1', '127.0.0.1'))->{json}{action}}++;
    $got{send_to('/none', https('a-2', '127.0.0.1', $strict))
         ->{json}{action}}++;
    $got{send_to('/mismatch', https('a-3', '127.0.0.1'))->{json}{action}}++;

    is_deeply(\%got, { map { $_ => 1 } values %action },
              'actions: check_server, check_certificate, retry');
}

###############################################################################

subtest 'two certificate profiles on one host never share a connection' => sub {
    $t->sim_reset;

    my $ch = https('active-shared', '127.0.0.1');
    my @seq = qw(a b none a b none a);
    my @out = map { outcome(send_to("/$_", $ch)) } @seq;

    is_deeply(\@out, [map { $_ eq 'none' ? '403 forbidden'
                                         : '200 delivered' } @seq],
              'a and b delivered, the location without one refused '
              . 'every time');

    my $recs = $t->sim_requests;
    is_deeply([map { $_->{client_cn} // 'none' } @$recs],
              [map { $_ eq 'none' ? 'none' : "service-$_.example" } @seq],
              'each request with its own certificate');

    my %conn;
    push @{$conn{$seq[$_]}}, $recs->[$_]{conn} for 0 .. $#seq;

    is($conn{a}[0], $conn{a}[1], 'a reused its connection');
    is($conn{b}[0], $conn{b}[1], 'b reused its connection');

    my %owner;
    for my $p (qw(a b none)) {
        $owner{$_}{$p} = 1 for @{$conn{$p}};
    }
    is((grep { keys %{$owner{$_}} > 1 } keys %owner), 0,
       'no connection served two profiles');
};

subtest 'TLS session resumption' => sub {
    $t->sim_reset;

    my $ch = https('active-resume', 'resume.notify.live.test');

    is(outcome(send_to('/a', $ch)), '200 delivered', 'first');
    sleep 1.5;    # mpns_keepalive_timeout 1s: a new connection next
    is(outcome(send_to('/a', $ch)), '200 delivered', 'second');

    my $recs = $t->sim_requests;
    isnt($recs->[0]{conn}, $recs->[1]{conn}, 'two connections');
    ok(!$recs->[0]{resumed}, 'the first handshake was a full one');
    ok($recs->[1]{resumed}, 'the second resumed the session');

    my $s = $t->sim_stats;
    is("$s->{tls_handshakes} $s->{tls_resumed}", '1 1',
       'one full handshake, one resumed');

    # sessions belong to a profile: b starts with a full handshake
    send_to('/b', $ch);
    ok(!$t->sim_requests->[-1]{resumed}, 'not with the session of a');
};

###############################################################################

subtest 'callback registration' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/callback', {
        channel => https('active-cb', '127.0.0.1'),
        callback_uri => 'https://app.example/mpns/inactive?device=42',
        payload => 'device 42 went inactive' });

    is(outcome($r), '200 delivered', 'registered');

    my $rec = last_record();
    is($rec->{target}, '/unthrottledthirdparty/01.00/active-cb/callback',
       'POST <channel>/callback');
    ok($rec->{callback}, 'a callback registration');
    is($rec->{hdr}{'x-callbackuri'},
       'https://app.example/mpns/inactive?device=42', 'X-CallbackURI');
    is($rec->{body}, 'device 42 went inactive', 'the message');
    is($rec->{hdr}{'x-windowsphone-target'}, undef, 'no target header');
    is($rec->{hdr}{'x-notificationclass'}, undef, 'no class header');

    $r = $t->post_json('/callback', {
        channel => https('expired-cb', '127.0.0.1'),
        callback_uri => 'https://app.example/cb', payload => 'x' });
    is(outcome($r), '404 expired', 'an expired channel');
};

$t->refused('callback: an http channel', 400,
            'a callback needs an https channel', 'channel', sub {
    $t->post_json('/callback', { channel => "http://127.0.0.1:$sim/t/cb",
                                 callback_uri => 'https://app.example/cb',
                                 payload => 'x' });
});

$t->refused('callback: no callback_uri', 400, 'missing field',
            'callback_uri', sub {
    $t->post_json('/callback', { channel => https('cb', '127.0.0.1'),
                                 payload => 'x' });
});

$t->refused('callback: no message', 400, 'missing field', 'payload', sub {
    $t->post_json('/callback', { channel => https('cb', '127.0.0.1'),
                                 callback_uri => 'https://app.example/cb' });
});

$t->refused('callback: not a URL', 400, 'invalid value', 'callback_uri',
            sub {
    $t->post_json('/callback', { channel => https('cb', '127.0.0.1'),
                                 callback_uri => 'app.example/cb',
                                 payload => 'x' });
});

$t->refused('callback: header injection', 400, 'invalid character',
            'callback_uri', sub {
    $t->post_json('/callback', { channel => https('cb', '127.0.0.1'),
                                 callback_uri => "https://a/\r\nX-Evil: 1",
                                 payload => 'x' });
});

$t->refused('callback: a message over 1 KB', 413, 'payload too large',
            'payload', sub {
    $t->post_json('/callback', { channel => https('cb', '127.0.0.1'),
                                 callback_uri => 'https://app.example/cb',
                                 payload => 'x' x 1025 });
});

$t->refused('callback: one channel only', 400,
            'a callback is registered for one channel', 'type', sub {
    $t->post_json('/callback', { channels => [https('cb', '127.0.0.1')],
                                 callback_uri => 'https://app.example/cb',
                                 payload => 'x' });
});

###############################################################################

subtest 'mpns_proxy' => sub {
    $t->sim_reset;

    is(outcome(send_to('/proxied', "http://127.0.0.1:$sim/t/active-p1")),
       '200 delivered', 'an http channel through the proxy');
    is(outcome(send_to('/proxied', https('active-p2', 'mpns.test'))),
       '200 delivered', 'an https channel through a tunnel');
    is(outcome(send_to('/proxied', https('active-p3', 'mpns.test'))),
       '200 delivered', 'again');
    is(outcome(send_to('/proxied', "http://127.0.0.1:$sim/t/active-p4")),
       '200 delivered', 'http again');

    my $recs = $t->sim_requests;
    is($recs->[1]{client_cn}, 'service-a.example', 'the certificate '
       . 'reaches MPNS through the tunnel');
    is($recs->[1]{sni}, 'mpns.test', 'SNI through the tunnel');
    is($recs->[0]{target}, '/t/active-p1', 'origin-form at MPNS');

    my $s = $t->sim_stats;
    is($s->{proxy_connects}, 1, 'one tunnel, reused');
    is($s->{proxy_requests}, 2, 'two absolute-form requests');
    is($s->{proxy_connections}, 2,
       'two connections to the proxy: the tunnel and one for http');
    is($s->{dns_queries}, 0, 'the proxy resolves, not nginx');
};

###############################################################################

subtest 'a reload with TLS connections in the cache' => sub {
    $t->sim_reset;

    is(outcome(send_to('/a', https('active-r1', 'mpns.test'))),
       '200 delivered', 'before');

    $t->reload;

    is(outcome(send_to('/a', https('active-r2', 'mpns.test'))),
       '200 delivered', 'after');

    my $recs = $t->sim_requests;
    isnt($recs->[0]{conn}, $recs->[1]{conn},
         'the new worker has a connection of its own');
    ok($t->wait_for(sub { $t->sim_stats->{open} <= 1 }, 5),
       'the old worker closed its idle TLS connection');
};

###############################################################################

# configuration mistakes

sub conf_error {
    my ($directives, $want, $name) = @_;

    my ($rc, $out) = $t->nginx_test(http_conf(<<"EOF"));
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /x {
            mpns_send;
            $directives
        }
    }
EOF

    subtest $name => sub {
        isnt($rc, 0, 'nginx -t fails');
        like($out, $want, 'emerg') or diag($out);
    };
}

conf_error("mpns_ssl_certificate $C/none.crt; "
           . "mpns_ssl_certificate_key $C/client-a.key;",
           qr/\[emerg\] cannot load certificate "\Q$C\E\/none\.crt"/,
           'a certificate that does not exist');
conf_error("mpns_ssl_certificate $C/client-a.crt; "
           . "mpns_ssl_certificate_key $C/none.key;",
           qr/\[emerg\] cannot load certificate key "\Q$C\E\/none\.key"/,
           'a key that does not exist');
conf_error("mpns_ssl_certificate $C/client-a.crt;",
           qr/\[emerg\] no "mpns_ssl_certificate_key" is defined for certificate "\Q$C\E\/client-a\.crt"/,
           'a certificate without its key');
conf_error("mpns_ssl_certificate_key $C/client-a.key;",
           qr/\[emerg\] no "mpns_ssl_certificate" is defined for key/,
           'a key without its certificate');
conf_error("mpns_ssl_certificate $C/client-a.crt; "
           . "mpns_ssl_certificate_key $C/client-a-enc.key; "
           . "mpns_ssl_password_file $C/wrong-password.txt;",
           qr/\[emerg\] cannot load certificate key "\Q$C\E\/client-a-enc\.key"/,
           'a wrong password');
conf_error("mpns_ssl_password_file $C/no-such-file;",
           qr/\[emerg\] open\(\) "\Q$C\E\/no-such-file" failed/,
           'a password file that does not exist');
# nginx's own words, which 1.27.2 changed (it loads through its cache)
conf_error("mpns_ssl_trusted_certificate $C/none.crt;",
           $t->has_version('1.27.2')
           ? qr/\[emerg\] cannot load certificate "\Q$C\E\/none\.crt"/
           : qr/\[emerg\] SSL_CTX_load_verify_locations\("\Q$C\E\/none\.crt"\) failed/,
           'a trusted certificate file that does not exist');
conf_error("mpns_ssl_ciphers NO-SUCH-CIPHER;",
           qr/\[emerg\] SSL_CTX_set_cipher_list\("NO-SUCH-CIPHER"\) failed/,
           'no such cipher');
conf_error("mpns_ssl_protocols TLSv9;",
           qr/\[emerg\] invalid value "TLSv9" in /,
           'no such protocol');
conf_error("mpns_ssl_verify maybe;",
           qr/\[emerg\] invalid value "maybe" in "mpns_ssl_verify"/,
           'mpns_ssl_verify maybe');
conf_error("mpns_proxy https://127.0.0.1:3128;",
           qr/\[emerg\] invalid proxy "https:\/\/127\.0\.0\.1:3128": only http proxies are supported/,
           'an https proxy');
conf_error("mpns_proxy http://127.0.0.1:3128/path;",
           qr/\[emerg\] invalid proxy "http:\/\/127\.0\.0\.1:3128\/path": a path is not allowed/,
           'a proxy with a path');
conf_error("mpns_proxy http://127.0.0.1:3128; mpns_proxy off;",
           qr/\[emerg\] "mpns_proxy" directive is duplicate/,
           'mpns_proxy twice');

$t->done;

done_testing;
