#!/usr/bin/perl

# Who may call the module's locations (docs/security.md): the module has no
# access control of its own, nginx's does it.  Each configuration of
# docs/security.md protects the four kinds of location - a send, a
# broadcast, the registry API, a background send and its result at
# GET <location>/<id> - and each is exercised here: refused without the
# credential (and nothing sent, registered or queued), served with it.
#
#   allow/deny           a client from 127.0.0.2 is not 127.0.0.1
#   auth_basic           an htpasswd file made by "openssl passwd"
#   auth_request         the application's check, here a location of its
#                        own answering 204 to one bearer token
#   client certificates  the test CA's certificates (util/gen-test-certs)

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

use lib 't/lib';
use MpnsTest qw(http_conf result);

my $t = MpnsTest->new;

my $dir = $t->testdir;

# auth_basic: "app" with the password "s3cret", as openssl writes it
{
    my $hash = `openssl passwd -apr1 s3cret`;
    chomp $hash;
    BAIL_OUT('openssl passwd failed') if $? || $hash !~ /^\$apr1\$/;

    open my $fh, '>', "$dir/htpasswd" or die "htpasswd: $!";
    print $fh "app:$hash\n";
    close $fh;
}

$t->sim_start;

# the same four locations in each server (an outbox is one location's)
my $locations = <<'EOF';
        location = /push      { mpns_send; }
        location = /broadcast { mpns_broadcast devices toast; }
        location = /channels  { mpns_registry devices; }

        location /later {
            mpns_send toast;
            mpns_outbox outbox_NAME;
            mpns_mode background;
        }
EOF

my $conf = http_conf(<<'EOF_CONF');

    mpns_allowed_hosts ^127\.0\.0\.1$;

    mpns_registry_zone zone=devices:1m;
    mpns_outbox_zone zone=outbox_allow:1m;
    mpns_outbox_zone zone=outbox_basic:1m;
    mpns_outbox_zone zone=outbox_authreq:1m;
    mpns_outbox_zone zone=outbox_tls:1m;

    # allow and deny: the application's addresses only

    server {
        listen       127.0.0.1:%%PORT_ALLOW%%;
        server_name  localhost;

        allow  127.0.0.1;
        deny   all;

%%LOCATIONS_allow%%
    }

    # auth_basic: a user and a password

    server {
        listen       127.0.0.1:%%PORT_BASIC%%;
        server_name  localhost;

        auth_basic            "mpns";
        auth_basic_user_file  %%TESTDIR%%/htpasswd;

%%LOCATIONS_basic%%
    }

    # auth_request: the application says who may

    server {
        listen       127.0.0.1:%%PORT_AUTHREQ%%;
        server_name  localhost;

        auth_request  /_auth;

        location = /_auth {
            internal;
            auth_request              off;
            proxy_pass                http://127.0.0.1:%%PORT_APP%%/check;
            proxy_pass_request_body   off;
            proxy_set_header          Content-Length "";
            proxy_set_header          X-Original-URI $request_uri;
        }

%%LOCATIONS_authreq%%
    }

    # the application's check (any service answering 2xx or 401/403)

    server {
        listen       127.0.0.1:%%PORT_APP%%;
        server_name  localhost;

        location = /check {
            if ($http_authorization = "Bearer s3cret") {
                return 204;
            }

            return 401;
        }
    }

    # client certificates: one the CA signed, and of the application only

    map $ssl_client_s_dn $mpns_client {
        CN=service-a.example  1;
        default               0;
    }

    server {
        listen       127.0.0.1:%%PORT_TLS%% ssl;
        server_name  localhost;

        ssl_certificate         %%CERTS%%/server.crt;
        ssl_certificate_key     %%CERTS%%/server.key;
        ssl_client_certificate  %%CERTS%%/ca.crt;
        ssl_verify_client       on;

        if ($mpns_client = 0) {
            return 403;
        }

%%LOCATIONS_tls%%
    }

EOF_CONF

$conf =~ s{%%LOCATIONS_(\w+)%%}{
    my $name = $1;
    $locations =~ s/NAME/$name/gr;
}ge;

$t->write_conf($conf);
$t->run;

my $sim = $t->sim_port;

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

###############################################################################

# one request to a server as a client with some credential: %c is what
# tells the clients apart (local address, headers, TLS certificate)

sub call {
    my ($server, $c, $method, $uri, $body) = @_;

    my @body = defined $body
        ? (body => JSON::PP->new->canonical->encode($body),
           headers => ['Content-Type' => 'application/json',
                       @{$c->{headers} // []}])
        : (headers => $c->{headers} // []);

    if ($server eq 'tls') {
        my $s = eval { $t->tls_connect(port => $t->port('tls'),
                                       (defined $c->{cert}
                                        ? (cert => $c->{cert}) : ())) };
        return { status => undef, error => $@ } if !$s;

        $t->http_start($method, $uri, socket => $s, @body);
        return $t->http_finish($s);
    }

    return $t->http($method, $uri, port => $t->port($server),
                     local => $c->{local}, @body);
}

# per server: the client that is let in, and those that are not, with
# the status each gets
my %servers = (
    allow => {
        ok => { local => '127.0.0.1' },
        no => [ [ 'another address', { local => '127.0.0.2' }, 403 ] ],
    },
    basic => {
        ok => { headers => [ Authorization => 'Basic YXBwOnMzY3JldA==' ] },
        no => [ [ 'no credentials', {}, 401 ],
                [ 'a wrong password',
                  { headers => [ Authorization => 'Basic YXBwOndyb25n' ] },
                  401 ] ],
    },
    authreq => {
        ok => { headers => [ Authorization => 'Bearer s3cret' ] },
        no => [ [ 'no token', {}, 401 ],
                [ 'a wrong token',
                  { headers => [ Authorization => 'Bearer guess' ] },
                  401 ] ],
    },
    tls => {
        ok => { cert => 'client-a' },
        no => [ [ 'no certificate', {}, 400 ],
                [ "a certificate of another CA", { cert => 'rogue' }, 400 ],
                [ "another of the CA's certificates", { cert => 'client-b' },
                  403 ] ],
    },
);

my $n = 0;

for my $server (qw(allow basic authreq tls)) {

    my $ok = $servers{$server}{ok};

    # the application registers a device and sends a background toast

    my $channel = ch("$server-" . ++$n);

    $t->sim_reset;

    my $r = call($server, $ok, 'POST', '/channels',
                 { channel => $channel, device => "d-$server" });
    is($r->{status}, 201, "$server: the registry takes a channel")
        or diag($r->{raw} // $r->{error});

    $r = call($server, $ok, 'POST', '/later',
              { channel => $channel, text1 => 'Later' });
    is($r->{status}, 202, "$server: a background send")
        or diag($r->{raw} // $r->{error});

    my $id = ($r->{json} // {})->{id} // 'none';

    ok($t->wait_for(sub {
        ((call($server, $ok, 'GET', "/later/$id")->{json} // {})->{state}
         // '') eq 'done' }, 5),
       "$server: its result at GET /later/<id>");

    $r = call($server, $ok, 'POST', '/push',
              { channel => $channel, type => 'toast', text1 => 'Hi' });
    is(result($r), '200 delivered', "$server: a send");

    $r = call($server, $ok, 'POST', '/broadcast', { text1 => 'All' });
    is($r->{status}, 200, "$server: a broadcast");
    is(($r->{json} // {})->{delivered}, $n, "$server: to every channel");

    is(scalar @{$t->sim_requests}, 2 + $n, "$server: MPNS got them");

    # and nobody else

    for my $no (@{$servers{$server}{no}}) {
        my ($who, $c, $status) = @$no;

        subtest "$server: $who" => sub {
            $t->sim_reset;

            my @calls = (
                [ 'a send', 'POST', '/push',
                  { channel => ch("$server-no"), type => 'toast',
                    text1 => 'Hi' } ],
                [ 'a broadcast', 'POST', '/broadcast', { text1 => 'All' } ],
                [ 'a registration', 'POST', '/channels',
                  { channel => ch("$server-no") } ],
                [ 'the registry listed', 'GET', '/channels' ],
                [ 'a channel deleted', 'DELETE',
                  '/channels?channel=' . MpnsTest::uri_escape($channel) ],
                [ 'a background send', 'POST', '/later',
                  { channel => ch("$server-no"), text1 => 'Later' } ],
                [ 'a result', 'GET', "/later/$id" ],
            );

            for my $call (@calls) {
                my ($what, @req) = @$call;
                my $got = call($server, $c, @req);
                is($got->{status}, $status, "$what: $status")
                    or diag($got->{raw} // $got->{error});
                unlike($got->{body} // '', qr/channel/,
                       "$what: nothing of the module's");
            }

            sleep 0.3;      # a background send would be out by now
            is(scalar @{$t->sim_requests}, 0, 'nothing sent');

            my $list = call($server, $ok, 'GET', '/channels')->{json} // {};
            is(scalar @{$list->{channels} // []}, $n,
               'nothing registered or deleted');
        };
    }
}

###############################################################################

$t->done;
done_testing;
