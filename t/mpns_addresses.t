#!/usr/bin/perl

# Where a channel may point besides its host name (docs/directives.md
# mpns_allowed_addresses and mpns_allowed_ports, docs/security.md): by
# default only public addresses, checked for IP literals when the channel
# is checked and for every address a name resolves to before anything is
# connected, and only the ports of http and https; a refused address is
# the outcome "refused", never a connection.  The first half runs with
# the defaults, the second with loopback allowed the way the other tests
# allow it (see http_conf in the harness).

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;

use lib 't/lib';
use MpnsTest qw(http_conf result);

my $t = MpnsTest->new;

$t->sim_start(second => 1, dns => 1, proxy => 1);

my $SIM = $t->sim_port;
my $SIM2 = $t->port('sim2');

# a name that resolves to two addresses, one of them refused below, and
# one whose two addresses are both refused
my $dns = $t->fake_dns({ 'two.test' => ['127.0.0.2', '127.0.0.1'],
                         'none.test' => ['127.0.0.2', '127.0.0.3'] });

###############################################################################

# helpers

sub toast { $t->push_toast(@_) }

# the answer to a send whose host resolved to addresses all refused: 403,
# outcome refused, nothing connected, one info line naming the first
sub refused_address {
    my ($name, $uri, $channel, $line) = @_;

    subtest $name => sub {
        $t->sim_reset;
        my $mark = $t->log_mark;

        my $r = toast($channel, uri => $uri);

        is(result($r), '403 refused', '403 refused') or diag($r->{raw});
        is($r->{json} && $r->{json}{action}, 'fix_request',
           'action fix_request');
        is($r->{json} && $r->{json}{status}, undef, 'no MPNS status');
        is($r->{json} && $r->{json}{attempts}, 1, 'tried once');

        my $stats = $t->sim_stats;
        is($stats->{accepted}, 0, 'nothing connected');
        is($stats->{requests}, 0, 'nothing sent');

        my @lines = $t->log_since(qr/is not allowed/, $mark);
        is(scalar @lines, 1, 'one log line');
        like($lines[0] // '', qr/\[info\] .*\Q$line\E/, "\"$line\"")
            or diag(join "\n", $t->log_since(undef, $mark));
        is(join("\n", $t->log_since('error', $mark)), '', 'no [error]');
    };
}

###############################################################################

# the defaults

$t->write_conf(http_conf(<<'EOF_CONF', defaults => 1));

    mpns_registry_zone zone=devices:1m;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        # every host name: what is checked here is where it points
        mpns_allowed_hosts .;

        resolver 127.0.0.1:%%DNS_PORT%% valid=30s ipv6=off;

        location = /push { mpns_send; }

        location = /any-port {
            mpns_send;
            mpns_allowed_ports 1-65535;
        }

        location = /channels { mpns_registry devices; }

        # the simulator's proxy takes requests for any host, but only ever
        # connects to 127.0.0.1: the request reaching it is the proof
        location = /proxied {
            mpns_send;
            mpns_proxy http://127.0.0.1:%%PROXY_PORT%%;
        }
    }

EOF_CONF

$t->run;

# IP literals of every special-purpose range, at an allowed port

for my $host (qw(127.0.0.1 127.255.255.254 0.0.0.0 10.1.2.3 100.64.0.1
                 100.127.255.254 169.254.169.254 172.16.0.1 172.31.255.255
                 192.0.0.8 192.0.2.1 192.88.99.1 192.168.1.1 198.18.0.1
                 198.19.255.255 198.51.100.7 203.0.113.9 224.0.0.1
                 239.255.255.250 240.0.0.1 255.255.255.255
                 [::] [::1] [::ffff:127.0.0.1] [::ffff:10.0.0.1]
                 [::ffff:169.254.169.254] [64:ff9b::7f00:1] [64:ff9b:1::1]
                 [100::1] [2001::1] [2001:1ff::1] [2001:db8::1]
                 [2002:7f00:1::1] [fc00::1] [fd12:3456::1] [fe80::1]
                 [febf::1] [ff02::1]))
{
    $t->refused("default: address $host refused", 403,
                'channel address is not allowed', 'channel', sub {
        toast("http://$host/x");
    });
}

# digits and dots are an IPv4 address in its usual form or nothing: other
# forms are other addresses to other software, never names to resolve

for my $host (qw(127.1 2130706433 0177.0.0.1 127.0.0.1. 08.8.8.8 8.8.8
                 1.2.3.4.5 ... 127.0.0.01 127.0.00.1 127..0.1 127.0.0.1000))
{
    $t->refused("default: numeric host $host refused", 403,
                'channel address is not allowed', 'channel', sub {
        toast("http://$host/x");
    }, sub {
        is($t->sim_stats->{dns_queries}, 0, 'not resolved');
    });
}

$t->refused('default: an https address refused', 403,
            'channel address is not allowed', 'channel', sub {
    toast('https://127.0.0.1/x');
});

$t->refused('default: any port, still not the address', 403,
            'channel address is not allowed', 'channel', sub {
    toast("http://127.0.0.1:$SIM/x", uri => '/any-port');
});

# addresses just outside the ranges are public: they pass the check and
# go out, to the proxy here, which answers 403 itself to a host it does
# not take (an answer, classified as "forbidden", not the module's
# mistake)

for my $host (qw(9.255.255.255 11.0.0.1 100.63.255.255 100.128.0.1
                 172.15.255.255 172.32.0.1 192.167.255.255 192.169.0.1
                 198.17.255.255 198.20.0.1 223.255.255.255
                 [::ffff:8.8.8.8] [2001:200::1] [2606:4700::1111]))
{
    subtest "default: address $host allowed" => sub {
        $t->sim_reset;
        my $r = toast("http://$host/x", uri => '/proxied');

        is(result($r), '403 forbidden', "the proxy's answer") or diag($r->{raw});
        is(($r->{json} // {})->{channel}, "http://$host/x", 'for the channel');
    };
}

$t->refused('default: through a proxy, an IP literal is still checked', 403,
            'channel address is not allowed', 'channel', sub {
    toast('http://127.0.0.1/x', uri => '/proxied');
});

# names: every address a name resolves to is checked before a connection

refused_address('default: a name that resolves to 127.0.0.1', '/any-port',
                "http://loop.test:$SIM/x",
                'mpns server address 127.0.0.1 of "loop.test" is not '
                . 'allowed (1 of 1 addresses)');

subtest 'default: the name was resolved once, nothing more' => sub {
    $t->sim_reset;
    toast("http://loop2.test:$SIM/x", uri => '/any-port');
    toast("http://loop2.test:$SIM/y", uri => '/any-port');

    my $stats = $t->sim_stats;
    is_deeply($stats->{dns_names}, { 'loop2.test' => 1 }, 'one query');
    is($stats->{accepted}, 0, 'no connection');
};

subtest 'default: a channels list of names all refused' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/any-port', {
        channels => ["http://a.test:$SIM/1", "http://b.test:$SIM/2"],
        type => 'toast', text1 => 'Hi' });

    is($r->{status}, 200, 'a summary') or diag($r->{raw});
    is_deeply(($r->{json} // {})->{outcomes}, { refused => 2 },
              'both refused');
    is($t->sim_stats->{accepted}, 0, 'nothing connected');
};

# ports: those of http and https only

$t->refused('default: port 8080 refused', 403, 'channel port is not allowed',
            'channel', sub {
    toast('http://db3.notify.live.net:8080/x');
});

$t->refused('default: https on 8443 refused', 403,
            'channel port is not allowed', 'channel', sub {
    toast('https://db3.notify.live.net:8443/x');
});

$t->refused('default: https on port 80 is a port of the list', 403,
            'channel address is not allowed', 'channel', sub {
    toast('https://127.0.0.1:80/x');
});

$t->refused('default: the port is checked before the address', 403,
            'channel port is not allowed', 'channel', sub {
    toast("http://127.0.0.1:$SIM/x");
});

refused_address('default: port 80 of a name is checked for its address',
                '/push', 'http://port80.test/x',
                'mpns server address 127.0.0.1 of "port80.test" is not '
                . 'allowed (1 of 1 addresses)');

# the registry takes what a send would take

$t->refused('default: registry refuses an address', 403,
            'channel address is not allowed', 'channel', sub {
    $t->post_json('/channels', { channel => 'http://10.0.0.1/x' });
});

$t->refused('default: registry refuses a port', 403,
            'channel port is not allowed', 'channel', sub {
    $t->post_json('/channels', { channel => "http://127.0.0.1:$SIM/x" });
});

###############################################################################

# loopback allowed, as in every other test, and narrower lists

$t->restart(http_conf(<<'EOF_CONF'));

    mpns_retries 0;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        mpns_allowed_hosts .;

        resolver 127.0.0.1:%%DNS_PORT%% valid=30s ipv6=off;

        location = /push { mpns_send; }

        location = /one {
            mpns_send;
            mpns_allowed_addresses 127.0.0.1;
            resolver 127.0.0.1:%%PORT_FAKE_DNS%% valid=30s ipv6=off;
        }

        location = /v6 {
            mpns_send;
            mpns_allowed_addresses ::1;
        }

        location = /public {
            mpns_send;
            mpns_allowed_addresses public 127.0.0.1/32;
        }

        location = /ports {
            mpns_send;
            mpns_allowed_ports 80 443 %%SIM_PORT%%;
        }

        location = /low-ports {
            mpns_send;
            mpns_allowed_ports 1-1023;
        }

        location = /high-ports {
            mpns_send;
            mpns_allowed_ports %%SIM_PORT%%-65535;
        }
    }

EOF_CONF

$t->delivered('loopback allowed: an address', sub {
    toast("http://127.0.0.1:$SIM/x");
});

$t->delivered('loopback allowed: a name', sub {
    toast("http://loop.test:$SIM/x");
});

# of two addresses, the refused one is never connected to: a listener on
# it counts the connections (nginx's resolver starts at a random one of
# the two each time)

{
    my $ls = IO::Socket::INET->new(LocalAddr => "127.0.0.2:$SIM",
                                   Listen => 16, ReuseAddr => 1,
                                   Proto => 'tcp')
        or die "cannot listen on 127.0.0.2:$SIM: $!";
    $ls->blocking(0);

    my $mark = $t->log_mark;
    my @results;

    $t->sim_reset;

    for my $i (1 .. 8) {
        push @results, result(toast("http://two.test:$SIM/t/two-$i",
                                    uri => '/one'));
    }

    my $accepted = 0;
    $accepted++ while $ls->accept;

    is(join(',', @results), join(',', ('200 delivered') x 8),
       'two addresses: all 8 delivered');
    is($accepted, 0, 'two addresses: none to the refused address');
    is($t->sim_stats->{requests}, 8, 'two addresses: all to the allowed one');

    my @lines = $t->log_since(qr/is not allowed/, $mark);
    ok(@lines >= 1, 'two addresses: logged');
    like($lines[0] // '',
         qr/\[info\] .*mpns server address 127\.0\.0\.2 of "two\.test" is not allowed \(1 of 2 addresses\)/,
         'two addresses: the refused one named');
    is(join("\n", $t->log_since('error', $mark)), '',
       'two addresses: no [error]');

    refused_address('two addresses, both refused', '/one',
                    "http://none.test:$SIM/x",
                    'mpns server address 127.0.0.2 of "none.test" is not '
                    . 'allowed (2 of 2 addresses)');

    $accepted++ while $ls->accept;
    is($accepted, 0, 'both refused: not connected either');

    close $ls;
}

$t->refused('an IPv6 list does not take an IPv4 address', 403,
            'channel address is not allowed', 'channel', sub {
    toast("http://127.0.0.1:$SIM/x", uri => '/v6');
});

$t->refused('nor an IPv4 address mapped into IPv6', 403,
            'channel address is not allowed', 'channel', sub {
    toast("http://[::ffff:127.0.0.1]:$SIM/x", uri => '/v6');
});

$t->delivered('public and one address: that address', sub {
    toast("http://127.0.0.1:$SIM/x", uri => '/public');
});

$t->refused('public and one address: not its neighbour', 403,
            'channel address is not allowed', 'channel', sub {
    toast("http://127.0.0.2:$SIM/x", uri => '/public');
});

$t->delivered('a port of the list', sub {
    toast("http://127.0.0.1:$SIM/x", uri => '/ports');
});

$t->refused('a port not in the list', 403, 'channel port is not allowed',
            'channel', sub {
    toast("http://127.0.0.1:$SIM2/x", uri => '/ports');
});

$t->refused('a port above a range', 403, 'channel port is not allowed',
            'channel', sub {
    toast("http://127.0.0.1:$SIM/x", uri => '/low-ports');
});

$t->delivered('a port at the start of a range', sub {
    toast("http://127.0.0.1:$SIM/x", uri => '/high-ports');
});

###############################################################################

$t->done;
done_testing;
