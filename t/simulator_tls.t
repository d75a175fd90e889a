#!/usr/bin/perl

# The simulator's authenticated (TLS) side: HTTPS listeners with client
# certificates, SNI, session resumption, callback registration, and its
# forward proxy (absolute-form requests and CONNECT tunnels).  No nginx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Socket::INET;
use IO::Socket::SSL;
use MpnsTest qw(toast_xml);

$SIG{PIPE} = 'IGNORE';

my $t = MpnsTest->new;
$t->sim_start(second => 1, tls => 1, strict => 1, proxy => 1,
              client_ca => 1);

my $certs = $t->certs;
ok(-f "$certs/$_", "certs: $_")
    for qw(ca.crt server.crt server.key other-server.crt client-a.crt
           client-b.key rogue.crt untrusted-server.crt client-a-enc.key
           password.txt wrong-password.txt);

my @toast = (headers => ['Content-Type' => 'text/xml',
                         'X-WindowsPhone-Target' => 'toast',
                         'X-NotificationClass' => '2'],
             body => toast_xml(Text1 => 'Hi'));

# A request over a fresh TLS connection; returns the answer (status undef
# and "error" when the handshake or the read fails).
sub tls_request {
    my ($method, $path, %opts) = @_;

    my %http = map { $_ => delete $opts{$_} } grep { exists $opts{$_} }
               qw(headers body);

    my $s = eval { $t->tls_connect(%opts) };
    return { status => undef, error => $@ } if !$s;

    my $r = eval { $t->http($method, $path, socket => $s, %http) };
    return $r // { status => undef, error => $@ };
}

sub last_record { $t->sim_requests->[-1] // {} }

###############################################################################

# client certificates

$t->sim_reset;

my $r = tls_request('POST', '/unthrottledthirdparty/01.00/active-x',
                    cert => 'client-a', SSL_hostname => 'mpns.test', @toast);
is($r->{status}, 200, 'client-a: 200') or diag(explain $r);
is($r->{headers}{'x-notificationstatus'}, 'Received', 'client-a: Received');

my $rec = last_record();
ok($rec->{tls}, 'record: tls');
is($rec->{sni}, 'mpns.test', 'record: sni');
is($rec->{client_cn}, 'service-a.example', 'record: client_cn');
ok(!$rec->{resumed}, 'record: not resumed');
ok(!$rec->{callback}, 'record: not a callback');

$r = tls_request('POST', '/t/b', cert => 'client-b', @toast);
is($r->{status}, 200, 'client-b: 200');
is(last_record()->{client_cn}, 'service-b.example', 'client-b: client_cn');
is(last_record()->{sni}, undef, 'no SNI for an address: sni null');

$r = tls_request('POST', '/t/x', @toast);
is($r->{status}, 403, 'no client certificate: 403');
ok(!grep({ /^x-/ } keys %{$r->{headers}}), 'no client certificate: no X-')
    or diag(explain $r->{headers});
is(last_record()->{client_cn}, undef, 'no client certificate: client_cn null');

$r = tls_request('POST', '/t/x', cert => 'rogue', @toast);
is($r->{status}, 403, 'rogue certificate: 403');
ok(!grep({ /^x-/ } keys %{$r->{headers}}), 'rogue certificate: no X-');
is(last_record()->{client_cn}, undef, 'rogue certificate: client_cn null');

# channel states work as on plain listeners
$r = tls_request('POST', '/t/expired-1', cert => 'client-a', @toast);
is($r->{status}, 404, 'tls expired: 404');
is($r->{headers}{'x-subscriptionstatus'}, 'Expired', 'tls expired: Expired');

$r = tls_request('POST', '/t/x', cert => 'client-a',
                 headers => ['X-WindowsPhone-Target' => 'toast'],
                 body => 'not xml');
is($r->{status}, 400, 'tls: validation still applies');

# strict listener: the handshake itself needs the certificate
my $strict = $t->port('sim_tls_strict');

$r = tls_request('POST', '/t/x', port => $strict, @toast);
ok(!defined $r->{status}, 'strict, no certificate: no answer')
    or diag(explain $r);

$r = tls_request('POST', '/t/x', port => $strict, cert => 'rogue', @toast);
ok(!defined $r->{status}, 'strict, rogue certificate: no answer');

$r = tls_request('POST', '/t/x', port => $strict, cert => 'client-a', @toast);
is($r->{status}, 200, 'strict, client-a: 200');
is(last_record()->{client_cn}, 'service-a.example', 'strict: client_cn');

# SNI picks the certificate
{
    my $s = $t->tls_connect(SSL_hostname => 'other.test', cert => 'client-a');
    like($s->peer_certificate('subject'), qr/CN\s*=\s*other\.test/,
         'SNI other.test: other-server.crt');
    close $s;

    $s = $t->tls_connect(SSL_hostname => 'mpns.test', cert => 'client-a');
    like($s->peer_certificate('subject'), qr/CN\s*=\s*localhost/,
         'SNI mpns.test: server.crt');
    close $s;
}

# a client that never completes its handshake blocks nobody
{
    my $idle = IO::Socket::INET->new(PeerAddr => '127.0.0.1:'
                                     . $t->port('sim_tls'), Proto => 'tcp')
        or die "connect: $!";
    syswrite($idle, "\x16\x03\x01");            # a third of a record header

    my $start = time;
    $r = tls_request('POST', '/t/x', cert => 'client-a', @toast);
    is($r->{status}, 200, 'stalled handshake elsewhere: still answered');
    close $idle;
}

###############################################################################

# session resumption

$t->sim_reset;

{
    # one client context: sessions leave the cache with their context
    my $ctx = IO::Socket::SSL::SSL_Context->new(
        SSL_ca_file => "$certs/ca.crt",
        SSL_cert_file => "$certs/client-a.crt",
        SSL_key_file => "$certs/client-a.key",
        SSL_session_cache_size => 4,
    ) or die IO::Socket::SSL::errstr();
    my @status;

    for (1 .. 2) {
        my $s = $t->tls_connect(SSL_reuse_ctx => $ctx,
                                SSL_session_key => 'sim');
        push @status, $t->http('POST', '/t/resume', socket => $s,
                               @toast)->{status};
    }

    is("@status", '200 200', 'resumption: both answered');

    my $recs = $t->sim_requests;
    ok(!$recs->[0]{resumed}, 'resumption: first full');
    ok($recs->[1]{resumed}, 'resumption: second resumed');
    is($recs->[1]{client_cn}, 'service-a.example',
       'resumption: client certificate kept in the session');

    my $st = $t->sim_stats;
    is($st->{tls_handshakes}, 1, 'stats: tls_handshakes');
    is($st->{tls_resumed}, 1, 'stats: tls_resumed');
}

###############################################################################

# callback registration

$t->sim_reset;

my @cb = (headers => ['X-CallbackURI' => 'https://service.example/cb',
                      'Content-Type' => 'application/*'],
          body => 'channel 42');

$r = tls_request('POST', '/t/abc/callback', cert => 'client-a', @cb);
is($r->{status}, 200, 'callback: 200');
is($r->{headers}{'x-subscriptionstatus'}, 'Active', 'callback: Active');
is($r->{headers}{'x-deviceconnectionstatus'}, 'Connected',
   'callback: Connected');
ok(!exists $r->{headers}{'x-notificationstatus'},
   'callback: no X-NotificationStatus');
$rec = last_record();
ok($rec->{callback}, 'callback: recorded as callback');
is($rec->{body}, 'channel 42', 'callback: message recorded');

$r = tls_request('POST', '/t/expired-abc/callback', cert => 'client-a', @cb);
is($r->{status}, 404, 'callback on an expired channel: 404');
is($r->{headers}{'x-subscriptionstatus'}, 'Expired',
   'callback on an expired channel: Expired');

$r = tls_request('POST', '/t/abc/callback', cert => 'client-a',
                 headers => ['Content-Type' => 'text/plain'], body => 'm');
is($r->{status}, 400, 'callback without X-CallbackURI: 400');

$r = tls_request('POST', '/t/abc/callback', cert => 'client-a',
                 headers => ['X-CallbackURI' => 'https://s.example/cb'],
                 body => 'x' x 1025);
is($r->{status}, 400, 'callback message over 1 KB: 400');

$r = tls_request('POST', '/t/abc/callback', cert => 'client-a',
                 headers => ['X-CallbackURI' => 'https://s.example/cb'],
                 body => 'x' x 1024);
is($r->{status}, 200, 'callback message of 1 KB: 200');

$r = $t->http('POST', '/t/abc/callback', port => $t->sim_port, @cb);
is($r->{status}, 403, 'callback on a plain connection: 403');

$r = tls_request('POST', '/t/abc/callback', @cb);
is($r->{status}, 403, 'callback without a client certificate: 403');

###############################################################################

# the forward proxy

$t->sim_reset;

{
    my $proxy = $t->port('proxy');
    my $s = $t->http_connect(port => $proxy);

    my @answers;
    for my $url ($t->sim_url('/t/one'), $t->sim_url('/t/expired-two'),
                 'http://127.0.0.1:' . $t->port('sim2') . '/t/three',
                 'http://mpns.test:' . $t->sim_port . '/t/four') {
        $t->http_start('POST', $url, socket => $s, keepalive => 1, @toast);
        push @answers, $t->http_response($s)->{status} // 'none';
    }
    is("@answers", '200 404 200 200', 'proxy: keep-alive, several origins');

    $t->http_start('POST', 'http://example.com/x', socket => $s,
                   keepalive => 1, @toast);
    is($t->http_response($s)->{status}, 403, 'proxy: foreign origin 403');

    $t->http_start('POST', 'http://127.0.0.1:' . $t->sim_port . '/t/five',
                   socket => $s, keepalive => 1, @toast);
    is($t->http_response($s)->{status}, 200,
       'proxy: connection still usable');
    close $s;

    my $recs = $t->sim_requests;
    is(join(' ', map { $_->{target} } @$recs),
       '/t/one /t/expired-two /t/three /t/four /t/five',
       'proxy: origin-form targets');
    is($recs->[0]{hdr}{host}, 'localhost', 'proxy: Host passed on');
}

{
    my $s = $t->http_connect(port => $t->port('proxy'));
    my $tls_port = $t->port('sim_tls');

    print $s "CONNECT mpns.test:$tls_port HTTP/1.1\r\n"
             . "Host: mpns.test:$tls_port\r\n\r\n";

    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        sysread($s, $head, 1, length $head) or last;
    }
    like($head, qr{^HTTP/1\.1 200 }, 'CONNECT: 200');

    my $ssl = IO::Socket::SSL->start_SSL($s,
        SSL_hostname => 'mpns.test', SSL_ca_file => "$certs/ca.crt",
        SSL_verifycn_name => 'mpns.test', SSL_verifycn_scheme => 'http',
        SSL_cert_file => "$certs/client-a.crt",
        SSL_key_file => "$certs/client-a.key");
    ok($ssl, 'CONNECT: TLS through the tunnel')
        or diag(IO::Socket::SSL::errstr());

    $r = $ssl ? $t->http('POST', '/t/tunnel', socket => $ssl, @toast) : {};
    is($r->{status}, 200, 'CONNECT: answered');

    $rec = last_record();
    is($rec->{sni}, 'mpns.test', 'CONNECT: sni');
    is($rec->{client_cn}, 'service-a.example', 'CONNECT: client_cn');

    $s = $t->http_connect(port => $t->port('proxy'));
    print $s "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    like($t->http_finish($s)->{raw}, qr{^HTTP/1\.1 403 },
         'CONNECT to a foreign host: 403');
}

{
    my $st = $t->sim_stats;
    is($st->{proxy_connections}, 3, 'stats: proxy_connections');
    is($st->{proxy_requests}, 5, 'stats: proxy_requests');
    is($st->{proxy_connects}, 1, 'stats: proxy_connects');
    is($st->{tls_handshakes}, 1, 'stats: tls_handshakes through the proxy');
}

$t->done;
done_testing;
