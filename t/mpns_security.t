#!/usr/bin/perl

# Behaviour spec of what keeps ngx_http_mpns_module from becoming an open
# relay (docs/directives.md mpns_allowed_hosts, docs/api.md "Fields" and
# "Mistakes"): the default and custom host allow-lists, channel URI tricks,
# header and XML injection, and the payload size limit.  Addresses and
# ports: t/mpns_addresses.t.  No resolver is
# configured: a channel host that passes the allow-list but is not an IP
# literal fails with "no resolver defined", so nothing leaves 127.0.0.1.

use strict;
use warnings;

use Test::More;
use JSON::PP;

use lib 't/lib';
use MpnsTest qw(http_conf toast_xml uri_escape);

my $t = MpnsTest->new;

$t->write_conf(http_conf(<<'EOF_CONF'));

    # the simulator only
    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        mpns_allowed_hosts  ^127\.0\.0\.1$;

        location = /push     { mpns_send; }
        location = /push/raw { mpns_send raw; }

        location = /hook {
            mpns_send     toast;
            mpns_channel  $arg_channel;
            mpns_field    text1 "Hook";
        }
    }

    # the default allow-list
    server {
        listen       127.0.0.1:%%PORT_DEFAULT%%;
        server_name  localhost;

        location = /push { mpns_send; }

        location = /hook {
            mpns_send     toast;
            mpns_channel  $arg_channel;
            mpns_field    text1 "Hook";
        }
    }

    # several patterns; a location list replaces the server's
    server {
        listen       127.0.0.1:%%PORT_CUSTOM%%;
        server_name  localhost;

        mpns_allowed_hosts  ^127\.0\.0\.1$ ^localhost$;

        location = /push { mpns_send; }

        location = /narrow {
            mpns_send           toast;
            mpns_allowed_hosts  ^localhost$;
        }
    }

EOF_CONF

$t->sim_start;
$t->run;

my $SIM = $t->sim_port;
my $CH = $t->sim_url('/throttledthirdparty/01.00/AAF');

my @TOAST_HEADERS = sort qw(host content-type content-length accept
                            connection x-windowsphone-target
                            x-notificationclass x-messageid);
my @RAW_HEADERS = grep { $_ ne 'x-windowsphone-target' } @TOAST_HEADERS;

###############################################################################

# helpers ($t->delivered and $t->refused: see the harness)

# the host passed the allow-list: with no resolver the send fails as a
# transport error, having touched no network
sub allowed_unresolved {
    my ($name, $port, $channel, $host) = @_;

    subtest $name => sub {
        $t->sim_reset;
        my $mark = $t->log_mark;

        my $r = $t->push_toast($channel, port => $t->port($port));

        is($r->{status}, 502, 'answer 502') or diag($r->{raw});
        is($r->{json} && $r->{json}{outcome}, 'transport_error',
           'outcome transport_error') or diag($r->{body});
        is($r->{json} && $r->{json}{channel}, $channel, 'channel echoed');

        my $line = "no resolver defined to resolve $host";
        ok((grep { index($_, $line) >= 0 } $t->log_since('error', $mark)),
           "\"$line\" logged")
            or diag(join "\n", $t->log_since('error', $mark));
        ok(!(grep { /mpns request refused/ } $t->log_since('info', $mark)),
           'not refused');
        is(scalar @{$t->sim_requests}, 0, 'nothing sent');
    };
}

# a toast to $channel through /push (opts as for http)
sub toast { $t->push_toast(@_) }

###############################################################################

# the default allow-list: notify.live.net and hosts under it

$t->refused('default list refuses 127.0.0.1', 403,
            'channel host is not allowed', 'channel', sub {
    toast($CH, port => $t->port('default'));
});

$t->refused('default list refuses a conf channel of 127.0.0.1', 403,
            'channel host is not allowed', 'channel', sub {
    $t->http_get("/hook?channel=$CH", port => $t->port('default'));
});

allowed_unresolved('default list allows db3.notify.live.net', 'default',
                   'http://db3.notify.live.net/throttledthirdparty/01.00/AAF',
                   'db3.notify.live.net');

allowed_unresolved('default list allows notify.live.net itself', 'default',
                   'http://notify.live.net/x', 'notify.live.net');

allowed_unresolved('default list matches the host without the port',
                   'default', 'http://db3.notify.live.net:8080/x',
                   'db3.notify.live.net');

allowed_unresolved('default list is case-insensitive', 'default',
                   'http://DB3.Notify.Live.NET/x', 'DB3.Notify.Live.NET');

for my $host (qw(notify.live.net.evil.com evilnotify.live.net live.net
                 notify-live.net notify.live.net.127.0.0.1.nip.io
                 db3.notify.live.network))
{
    $t->refused("default list refuses $host", 403,
                'channel host is not allowed', 'channel', sub {
        toast("http://$host/x", port => $t->port('default'));
    });
}

$t->refused('default list: allowed name in the path', 403,
            'channel host is not allowed', 'channel', sub {
    toast("http://127.0.0.1:$SIM/db3.notify.live.net/x",
          port => $t->port('default'));
});

$t->refused('default list: allowed name in the query', 403,
            'channel host is not allowed', 'channel', sub {
    toast("http://127.0.0.1:$SIM/x?h=.notify.live.net",
          port => $t->port('default'));
});

$t->refused('default list: allowed name as userinfo', 400, 'invalid channel',
            'channel', sub {
    toast("http://db3.notify.live.net\@127.0.0.1:$SIM/x",
          port => $t->port('default'));
});

$t->refused('default list: allowed name in a fragment', 400, 'invalid channel',
            'channel', sub {
    toast("http://127.0.0.1:$SIM#.notify.live.net",
          port => $t->port('default'));
});

$t->refused('default list: allowed name after a backslash', 400,
            'invalid channel', 'channel', sub {
    toast("http://127.0.0.1:$SIM\\.notify.live.net/x",
          port => $t->port('default'));
});

# a custom list with several patterns

$t->delivered('custom list: 127.0.0.1 matches its pattern', sub {
    toast($CH, port => $t->port('custom'));
});

allowed_unresolved('custom list: localhost matches its pattern', 'custom',
                   'http://localhost/x', 'localhost');

allowed_unresolved('custom list: LOCALHOST matches case-insensitively',
                   'custom', 'http://LOCALHOST/x', 'LOCALHOST');

allowed_unresolved('custom list: LocalHost with a port', 'custom',
                   "http://LocalHost:$SIM/x", 'LocalHost');

for my $host ('127.0.0.2', '127.0.0.10', '1127.0.0.1', 'localhost.evil.com',
              'evil.localhost', 'db3.notify.live.net', '[::1]',
              '[::ffff:127.0.0.1]', '2130706433', '0x7f000001')
{
    $t->refused("custom list refuses $host", 403,
                'channel host is not allowed', 'channel', sub {
        toast("http://$host:$SIM/x", port => $t->port('custom'));
    });
}

$t->refused('a location list replaces the server list', 403,
            'channel host is not allowed', 'channel', sub {
    $t->post_json('/narrow', { channel => $CH, text1 => 'Hi' },
                  port => $t->port('custom'));
});

###############################################################################

# channel tricks

$t->delivered('a plain simulator channel is sent', sub {
    toast($CH);
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'path');
    is($_[0]{hdr}{host}, "127.0.0.1:$SIM", 'Host from the URI');
});

$t->refused('userinfo before the allowed host', 400, 'invalid channel',
            'channel', sub {
    toast("http://evil.com\@127.0.0.1:$SIM/x");
});

$t->refused('userinfo with the allowed host', 400, 'invalid channel',
            'channel', sub {
    toast("http://127.0.0.1:$SIM\@evil.com/x");
});

$t->refused('empty userinfo', 400, 'invalid channel', 'channel', sub {
    toast("http://\@127.0.0.1:$SIM/x");
});

$t->refused('https: userinfo', 400, 'invalid channel', 'channel', sub {
    toast("https://127.0.0.1:$SIM\@evil.com/x");
});

$t->refused('https: the allow-list applies', 403,
            'channel host is not allowed', 'channel', sub {
    toast("https://evil.com/x");
});

for my $channel ("ftp://127.0.0.1:$SIM/x", "//127.0.0.1:$SIM/x",
                 'javascript:alert(1)', "127.0.0.1:$SIM/x",
                 "file:///etc/passwd",
                 "gopher://127.0.0.1:$SIM/x")
{
    $t->refused("not an http url: $channel", 400, 'channel is not an http or https url',
                'channel', sub {
        toast($channel);
    });
}

{
    my $base = "http://127.0.0.1:$SIM/t/";

    $t->delivered('a channel of exactly 1024 characters', sub {
        toast($base . 'a' x (1024 - length $base));
    }, sub {
        is(length("http://127.0.0.1:$SIM" . $_[0]{target}), 1024,
           'whole channel sent');
    });

    $t->refused('a channel of 1025 characters', 400, 'channel is too long',
                'channel', sub {
        toast($base . 'a' x (1025 - length $base));
    });
}

for my $c (["CR", "\r"], ["LF", "\n"], ["CRLF header", "\r\nX-Evil: 1"],
           ["NUL", "\x00"], ["space", ' '], ["tab", "\t"],
           ["DEL", "\x7f"], ["non-ASCII", "\x{e9}"],
           ["escape", "\x1b"])
{
    $t->refused("$c->[0] in the channel path", 400, 'invalid character',
                'channel', sub {
        toast("http://127.0.0.1:$SIM/x$c->[1]y");
    });
}

$t->refused('NUL in the channel host', 400, 'invalid character', 'channel',
            sub {
    toast("http://127.0.0.1\x00.notify.live.net:$SIM/x");
});

$t->refused('NUL as a JSON escape in the channel', 400, 'invalid character',
            'channel', sub {
    $t->post_body('/push', 'application/json',
                  qq|{"channel":"http://127.0.0.1:$SIM/x\\u0000y",|
                  . q|"type":"toast","text1":"Hi"}|);
});

$t->refused('a decoded CRLF from the query channel', 400, 'invalid character',
            'channel', sub {
    $t->http_get("/push?type=toast&text1=Hi&channel=http://127.0.0.1:$SIM"
                 . '/x%0D%0AX-Evil:%201');
});

$t->refused('a decoded CRLF from a form channel', 400, 'invalid character',
            'channel', sub {
    $t->post_body('/push', 'application/x-www-form-urlencoded',
                  'type=toast&text1=Hi&channel='
                  . uri_escape("http://127.0.0.1:$SIM/x\r\nX-Evil: 1"));
});

$t->refused('an invalid UTF-8 byte in a form channel', 400,
            'invalid character', 'channel', sub {
    $t->post_body('/push', 'application/x-www-form-urlencoded',
                  'type=toast&text1=Hi&channel='
                  . uri_escape("http://127.0.0.1:$SIM/x") . '%FF');
});

$t->delivered('a percent-encoded CRLF from $arg_channel stays encoded', sub {
    $t->http_get("/hook?channel=http://127.0.0.1:$SIM/x%0D%0AX-Evil:%201");
}, sub {
    is($_[0]{target}, '/x%0D%0AX-Evil:%201', 'target as given');
    is_deeply([sort keys %{$_[0]{hdr}}], \@TOAST_HEADERS,
              'no extra header');
});

$t->refused('a fragment', 400, 'invalid channel', 'channel', sub {
    toast("http://127.0.0.1:$SIM/x#y");
});

$t->refused('an empty host', 400, 'invalid channel', 'channel', sub {
    toast('http:///x');
});

$t->refused('an empty host with a port', 400, 'invalid channel', 'channel',
            sub {
    toast("http://:$SIM/x");
});

$t->refused('a backslash in the authority', 400, 'invalid channel', 'channel',
            sub {
    toast("http://127.0.0.1:$SIM\\\@evil.com/x");
});

$t->refused('a backslash before the allowed host', 400, 'invalid channel',
            'channel', sub {
    toast("http://evil.com\\127.0.0.1:$SIM/x");
});

for my $port ('abc', '65536', '99999999999', "$SIM:$SIM", '-1')
{
    $t->refused("invalid port \"$port\"", 400, 'invalid channel', 'channel',
                sub {
        toast("http://127.0.0.1:$port/x");
    });
}

subtest 'a percent-encoded host does not pass the allow-list' => sub {
    $t->sim_reset;

    my $r = toast("http://127%2E0%2E0%2E1:$SIM/x");
    like($r->{status} // '', qr/^40[03]$/, 'refused') or diag($r->{raw});
    is(scalar @{$t->sim_requests}, 0, 'nothing sent');
};

# "%" in the authority: percent-encoding or an IPv6 zone, never a host
# name, whatever the allow-list says

for my $c (['percent-encoded dots', "127%2E0%2E0%2E1:$SIM"],
           ['percent-encoded digits', "%31%32%37.0.0.1:$SIM"],
           ['a percent-encoded NUL after the host', "127.0.0.1%00:$SIM"],
           ['an IPv6 zone', "[fe80::1%25eth0]:$SIM"],
           ['a raw IPv6 zone', "[fe80::1%eth0]:$SIM"],
           ['a percent-encoded port', "127.0.0.1:%32%30"])
{
    $t->refused("% in the host: $c->[0]", 400, 'invalid channel', 'channel',
                sub {
        toast("http://$c->[1]/x");
    });
}

$t->delivered('% in the path is kept', sub {
    toast("http://127.0.0.1:$SIM/x%41");
}, sub {
    is($_[0]{target}, '/x%41', 'target as given');
});

###############################################################################

# header injection

$t->refused('CRLF in message_id', 400, 'invalid value', 'message_id', sub {
    $t->post_json('/push', {
        channel => $CH, type => 'toast', text1 => 'Hi',
        message_id => "12345678-1234-1234-1234-123456789abc\r\nX-Evil: 1" });
});

$t->refused('LF in message_id', 400, 'invalid value', 'message_id', sub {
    $t->http_get('/push?type=toast&text1=Hi&channel=' . uri_escape($CH)
                 . '&message_id=12345678-1234-1234-1234-123456789abc%0A');
});

$t->delivered('raw pass-through sends the request Content-Type exactly', sub {
    $t->post_body('/push/raw?channel=' . uri_escape($CH),
                  'application/octet-stream; name="a;b"; x=1', '<x>1</x>');
}, sub {
    is($_[0]{hdr}{'content-type'}, 'application/octet-stream; name="a;b"; x=1',
       'Content-Type');
    is($_[0]{body}, '<x>1</x>', 'payload');
    is_deeply([sort keys %{$_[0]{hdr}}], \@RAW_HEADERS,
              'exactly the raw headers');
});

subtest 'CR/LF in a request header is refused by nginx' => sub {
    $t->sim_reset;

    my $r = $t->http('POST', '/push/raw?channel=' . uri_escape($CH),
                     body => 'x',
                     headers => ['Content-Type' => "text/xml\rX-Evil: 1"]);
    is($r->{status}, 400, 'answer 400');
    is(scalar @{$t->sim_requests}, 0, 'nothing sent');
};

$t->delivered('CR/LF in text fields stays in the XML body', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast',
                             text1 => "a\r\nX-Evil: 1\r\n\r\nb",
                             text2 => "c\nX-Evil2: 2",
                             param => "/P.xaml?x=\r\nX-Evil3: 3" });
}, sub {
    my ($s) = @_;
    is_deeply([sort keys %{$s->{hdr}}], \@TOAST_HEADERS,
              'exactly the toast headers');
    like($s->{body}, qr{<wp:Text1>a[^<]*X-Evil: 1[^<]*b</wp:Text1>},
         'text1 in the body');
    like($s->{body}, qr{<wp:Text2>c[^<]*X-Evil2: 2</wp:Text2>},
         'text2 in the body');
    like($s->{body}, qr{<wp:Param>/P.xaml\?x=[^<]*X-Evil3: 3</wp:Param>},
         'param in the body');
    is($s->{hdr}{'content-length'}, length $s->{body}, 'Content-Length');
});

$t->delivered('CR/LF in a tile id stays in the XML body', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile',
                             id => "/P.xaml\r\nX-Evil: 1", title => 'T' });
}, sub {
    is_deeply([sort keys %{$_[0]{hdr}}], \@TOAST_HEADERS,
              'exactly the tile headers');
});

###############################################################################

# XML injection

$t->delivered('markup in text1 is escaped', sub {
    $t->post_json('/push', {
        channel => $CH, type => 'toast',
        text1 => '</wp:Text1><wp:Param>/Evil.xaml</wp:Param>' });
}, sub {
    my ($s) = @_;
    is($s->{body},
       toast_xml(Text1 => '&lt;/wp:Text1&gt;&lt;wp:Param&gt;/Evil.xaml'
                          . '&lt;/wp:Param&gt;'),
       'escaped');
    unlike($s->{body}, qr{<wp:Param}, 'no Param element');
});

$t->delivered('& in text is escaped', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast',
                             text1 => 'a &amp; b & <c>',
                             param => '/P.xaml?a=1&b=2' });
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'a &amp;amp; b &amp; &lt;c&gt;',
                              Param => '/P.xaml?a=1&amp;b=2'),
       'escaped');
});

$t->delivered('a quote in an attribute is escaped', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile',
                             id => '/P.xaml?a=1&b=2" Template="FlipTile',
                             title => 'T' });
}, sub {
    my $id = '<wp:Tile Id="/P.xaml?a=1&amp;b=2&quot; Template=&quot;'
             . 'FlipTile">';
    ok(index($_[0]{body}, $id) >= 0, 'escaped Id') or diag($_[0]{body});
    unlike($_[0]{body}, qr{Template="}, 'no Template attribute');
});

$t->delivered('a CDATA end in text is escaped', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast',
                             text1 => 'x]]>y<!--z--><?pi?>' });
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'x]]&gt;y&lt;!--z--&gt;&lt;?pi?&gt;'),
       'escaped');
});

###############################################################################

# size limits

{
    my $n = length toast_xml(Text1 => '');

    $t->delivered('a toast of exactly 1024 bytes', sub {
        $t->post_json('/push', { channel => $CH, type => 'toast',
                                 text1 => 'a' x (1024 - $n) });
    }, sub {
        is(length $_[0]{body}, 1024, '1024 bytes sent');
    });

    $t->refused('a toast of 1025 bytes', 413, 'payload too large', 'payload',
                sub {
        $t->post_json('/push', { channel => $CH, type => 'toast',
                                 text1 => 'a' x (1025 - $n) });
    });

    $t->refused('escaping counts toward the size', 413, 'payload too large',
                'payload', sub {
        $t->post_json('/push', { channel => $CH, type => 'toast',
                                 text1 => '&' x (1024 - $n) });
    });
}

$t->delivered('a raw payload of exactly 1024 bytes', sub {
    $t->post_json('/push', { channel => $CH, type => 'raw',
                             payload => 'p' x 1024 });
}, sub {
    is($_[0]{body}, 'p' x 1024, 'payload sent');
});

$t->refused('a raw payload of 1025 bytes', 413, 'payload too large', 'payload',
            sub {
    $t->post_json('/push', { channel => $CH, type => 'raw',
                             payload => 'p' x 1025 });
});

$t->delivered('a raw pass-through body of exactly 1024 bytes', sub {
    $t->post_body('/push/raw?channel=' . uri_escape($CH), 'text/plain',
                  'p' x 1024);
}, sub {
    is($_[0]{body}, 'p' x 1024, 'payload sent');
});

$t->refused('a raw pass-through body of 1025 bytes', 413, 'payload too large',
            'payload', sub {
    $t->post_body('/push/raw?channel=' . uri_escape($CH), 'text/plain',
                  'p' x 1025);
});

###############################################################################

$t->done;
done_testing;
