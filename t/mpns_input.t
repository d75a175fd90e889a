#!/usr/bin/perl

# Behaviour spec of the send API's input (docs/api.md "Where fields come
# from", "Fields" and "Mistakes"): JSON, form and query forms reach the same
# notification; nginx.conf wins over the body, the body over the query,
# field by field; mpns_field is inherited like proxy_set_header; every
# caller mistake about the request gets its exact status and JSON answer,
# an info log line, and sends nothing.

use strict;
use warnings;

use Test::More;
use JSON::PP;

use lib 't/lib';
use MpnsTest qw(http_conf toast_xml uri_escape);

my $t = MpnsTest->new;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts  ^127\.0\.0\.1$;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /push       { mpns_send; }
        location = /push/toast { mpns_send toast; }
        location = /push/raw   { mpns_send raw; }

        location = /push/batched {
            mpns_send   toast;
            mpns_field  class 450;
        }

        location = /hooks/order-shipped {
            mpns_send     toast;
            mpns_channel  $arg_channel;
            mpns_field    text1 "Order shipped";
            mpns_field    text2 $arg_order;
        }

        location = /small {
            mpns_send           toast;
            mpns_max_body_size  100;
        }

        location = /spooled {
            mpns_send                toast;
            mpns_max_body_size       64k;
            client_body_buffer_size  1k;
        }
    }

    server {
        listen       127.0.0.1:%%PORT_INHERIT%%;
        server_name  localhost;

        mpns_channel  $arg_channel;
        mpns_field    text1 "From server";
        mpns_field    sound /server.wav;

        location = /plain {
            mpns_send  toast;
        }

        location = /own {
            mpns_send   toast;
            mpns_field  text2 "From location";
        }
    }

EOF_CONF

$t->sim_start;
$t->run;

my $CH = $t->sim_url('/throttledthirdparty/01.00/AAF');

###############################################################################

# helpers ($t->delivered and $t->refused: see the harness)

sub post_form {
    my ($uri, $body, %opts) = @_;
    my $type = $opts{type} // 'application/x-www-form-urlencoded';
    return $t->post_body($uri, $type, $body);
}

sub json_body {
    return JSON::PP->new->utf8->canonical->encode($_[0]);
}

# a POST with a chunked body sent in the given pieces
sub post_chunked {
    my ($uri, $type, @pieces) = @_;
    return $t->http('POST', $uri, headers => ['Content-Type' => $type],
                    chunks => \@pieces);
}

###############################################################################

# input forms

my $hello = toast_xml(Text1 => "Hello W\xc3\xb6rld", Text2 => 'Second line');

$t->delivered('a JSON body sends the notification', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast',
                             text1 => "Hello W\x{f6}rld",
                             text2 => 'Second line' });
}, sub {
    my ($s) = @_;
    is($s->{method}, 'POST', 'POST to the channel');
    is($s->{target}, '/throttledthirdparty/01.00/AAF', 'channel path');
    is($s->{body}, $hello, 'toast XML');
});

$t->delivered('a form body with "+" and %XX reaches the same XML', sub {
    post_form('/push', 'channel=' . uri_escape($CH)
                       . '&type=toast&text1=Hello+W%C3%B6rld'
                       . '&text2=Second+line');
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

$t->delivered('query args reach the same XML', sub {
    $t->http_get('/push?channel=' . uri_escape($CH)
                 . '&type=toast&text1=Hello%20W%C3%B6rld'
                 . '&text2=Second%20line');
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

$t->delivered('"+" in the query is a space, as in a GET form', sub {
    $t->http_get('/push?channel=' . uri_escape($CH)
                 . '&type=toast&text1=Hello+W%C3%B6rld&text2=Second+line');
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

$t->delivered('the query channel needs no encoding', sub {
    $t->http_get("/push?channel=$CH&type=toast&text1=Hi");
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'channel path');
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('"application/json; charset=utf-8" is JSON', sub {
    $t->post_body('/push', 'application/json; charset=utf-8',
                  json_body({ channel => $CH, type => 'toast',
                          text1 => "Hello W\x{f6}rld",
                          text2 => 'Second line' }));
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

$t->delivered('the media type is case-insensitive', sub {
    $t->post_body('/push', 'Application/JSON',
                  json_body({ channel => $CH, type => 'toast',
                              text1 => 'Hi' }));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('a form with "; charset=UTF-8" is a form', sub {
    post_form('/push', 'channel=' . uri_escape($CH) . '&type=toast&text1=Hi',
              type => 'application/x-www-form-urlencoded; charset=UTF-8');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('JSON \\u escapes are decoded', sub {
    $t->post_body('/push', 'application/json',
                  qq|{"channel":"$CH","type":"toast",|
                  . q|"text1":"Hello W\u00f6rld","text2":"Second\u0020line"}|);
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

$t->delivered('JSON whitespace around and after the object', sub {
    $t->post_body('/push', 'application/json',
                  qq|\r\n { "channel" : "$CH" ,\n\t"type":"toast", |
                  . qq|"text1" : "Hi" }\n|);
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('unquoted JSON numbers and booleans', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile',
                             count => 7, title => 'T' });
}, sub {
    like($_[0]{body}, qr{<wp:Count>7</wp:Count>}, 'count 7');
});

$t->delivered('unquoted JSON true for silent', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast', text1 => 'Hi',
                             silent => JSON::PP::true });
}, sub {
    like($_[0]{body}, qr{<wp:Sound Silent="true"\s*/>}, 'silent toast');
});

{
    my $clear;

    $t->delivered('JSON null clears a tile property', sub {
        $t->post_json('/push', { channel => $CH, type => 'tile', count => 3,
                                 title => undef });
    }, sub {
        $clear = $_[0]{body};
        like($clear, qr{<wp:Title Action="Clear"}, 'title cleared');
    });

    $t->delivered('clear as a JSON array is the same as null', sub {
        $t->post_json('/push', { channel => $CH, type => 'tile', count => 3,
                                 clear => ['title'] });
    }, sub {
        is($_[0]{body}, $clear, 'same XML');
    });

    $t->delivered('clear as a comma-separated form value', sub {
        post_form('/push', 'channel=' . uri_escape($CH)
                           . '&type=tile&count=3&clear=title');
    }, sub {
        is($_[0]{body}, $clear, 'same XML');
    });
}

$t->delivered('a camelCase alias in a form body', sub {
    post_form('/push', 'channel=' . uri_escape($CH) . '&type=toast&text1=Hi'
                       . '&messageId=ABCDEF01-2345-6789-ABCD-EF0123456789');
}, sub {
    is($_[0]{hdr}{'x-messageid'}, 'abcdef01-2345-6789-abcd-ef0123456789',
       'X-MessageID, lower-cased');
});

$t->delivered('an empty POST body with query args', sub {
    $t->http('POST', '/push?channel=' . uri_escape($CH)
                     . '&type=toast&text1=Hi', body => '');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('an empty JSON-typed body with query args', sub {
    $t->post_body('/push?channel=' . uri_escape($CH) . '&type=toast&text1=Hi',
                  'application/json', '');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('an empty form body with query args', sub {
    post_form('/push?channel=' . uri_escape($CH) . '&type=toast&text1=Hi', '');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('a body spooled to a temp file is read', sub {
    $t->post_body('/spooled', 'application/json',
                  json_body({ channel => $CH, text1 => 'Hi' }) . ' ' x 4000);
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('a chunked JSON body', sub {
    my $json = json_body({ channel => $CH, type => 'toast', text1 => 'Hi' });
    post_chunked('/push', 'application/json',
                 substr($json, 0, 10), substr($json, 10));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

# raw: the body is the payload unless the channel comes from the body

$t->delivered('raw pass-through sends the body byte for byte', sub {
    $t->post_body('/push/raw?channel=' . uri_escape($CH),
                  'application/octet-stream', "\x00\x01binary\xff\xfe\r\n{}");
}, sub {
    my ($s) = @_;
    is($s->{body}, "\x00\x01binary\xff\xfe\r\n{}", 'payload bytes');
    is($s->{hdr}{'content-type'}, 'application/octet-stream',
       'request Content-Type');
    ok(!exists $s->{hdr}{'x-windowsphone-target'}, 'no target header');
});

$t->delivered('raw pass-through does not parse a JSON body', sub {
    $t->post_body('/push?type=raw&channel=' . uri_escape($CH),
                  'application/json', '{"payload":"x","nosuch":1}');
}, sub {
    is($_[0]{body}, '{"payload":"x","nosuch":1}', 'JSON bytes as payload');
    is($_[0]{hdr}{'content-type'}, 'application/json',
       'request Content-Type');
});

$t->delivered('raw pass-through without Content-Type is text/xml', sub {
    $t->http('POST', '/push/raw?channel=' . uri_escape($CH),
             body => '<a>1</a>');
}, sub {
    is($_[0]{body}, '<a>1</a>', 'payload bytes');
    is($_[0]{hdr}{'content-type'}, 'text/xml', 'text/xml');
});

$t->delivered('raw with the channel in the body uses the payload field', sub {
    $t->post_json('/push/raw', { channel => $CH, payload => '<p>x</p>' });
}, sub {
    is($_[0]{body}, '<p>x</p>', 'payload field');
});

###############################################################################

# precedence: nginx.conf > body > query, field by field

$t->delivered('webhook: conf text1, text2 from $arg_order', sub {
    $t->http_get("/hooks/order-shipped?channel=$CH&order=42");
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'conf channel');
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '42'),
       'toast XML');
});

$t->delivered('a body text1 does not override the conf text1', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH&order=42",
                  { text1 => 'From body' });
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '42'),
       'conf text1');
});

$t->delivered('a query text1 does not override the conf text1', sub {
    $t->http_get("/hooks/order-shipped?channel=$CH&order=42&text1=Query");
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '42'),
       'conf text1');
});

$t->delivered('the conf channel wins over a body channel', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH&order=42",
                  { channel => $t->sim_url('/other/BODY') });
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'conf channel');
});

$t->delivered('a URL-encoded $arg_channel is decoded', sub {
    $t->http_get('/hooks/order-shipped?channel=' . uri_escape($CH)
                 . '&order=42');
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'decoded channel');
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '42'),
       'toast XML');
});

$t->delivered('a URL-encoded $arg_channel keeps its own escapes', sub {
    my $ch = $t->sim_url('/throttledthirdparty/01.00/A%2BB');
    $t->http_get('/hooks/order-shipped?channel=' . uri_escape($ch));
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/A%2BB',
       'decoded once, as the query parser does');
});

# an https channel, or a scheme in capitals, is decoded too: the host
# check sees it, not the "not an http or https url" of an encoded one

for my $ch ('https://10.0.0.1/x', 'HTTP://10.0.0.1/x') {
    $t->refused("a URL-encoded \$arg_channel $ch is decoded", 403,
                'channel host is not allowed', 'channel', sub {
        $t->http_get('/hooks/order-shipped?channel=' . uri_escape($ch));
    });
}

$t->refused('a URL-encoded $arg_channel with a CRLF', 400,
            'invalid character', 'channel', sub {
    $t->http_get('/hooks/order-shipped?channel='
                 . uri_escape("$CH\r\nX-Evil: 1"));
});

$t->delivered('an empty mpns_field sets nothing', sub {
    $t->http_get("/hooks/order-shipped?channel=$CH");
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped'), 'no Text2');
});

$t->delivered('an empty mpns_field leaves the field to the body', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH",
                  { text2 => 'From body' });
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped',
                              Text2 => 'From body'), 'body text2');
});

$t->delivered('an empty mpns_channel leaves the channel to the body', sub {
    $t->post_json('/hooks/order-shipped?order=7', { channel => $CH });
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'body channel');
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '7'),
       'toast XML');
});

$t->delivered('the body wins over the query, field by field', sub {
    $t->post_json('/push?type=tile&text1=Query1&text2=Query2',
                  { channel => $CH, type => 'toast', text1 => 'Body1' });
}, sub {
    is($_[0]{hdr}{'x-windowsphone-target'}, 'toast', 'body type');
    is($_[0]{body}, toast_xml(Text1 => 'Body1', Text2 => 'Query2'),
       'body text1, query text2');
});

$t->delivered('a form body wins over the query', sub {
    post_form('/push?channel=' . uri_escape($t->sim_url('/other/QUERY'))
              . '&type=toast&text1=Query',
              'text1=Form&channel=' . uri_escape($CH));
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'body channel');
    is($_[0]{body}, toast_xml(Text1 => 'Form'), 'body text1');
});

$t->delivered('mpns_send toast wins over a body type tile', sub {
    $t->post_json('/push/toast', { channel => $CH, type => 'tile',
                                   text1 => 'Hi' });
}, sub {
    is($_[0]{hdr}{'x-windowsphone-target'}, 'toast', 'toast target');
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('mpns_send toast wins over a query type tile', sub {
    $t->http_get('/push/toast?type=tile&text1=Hi&channel=' . uri_escape($CH));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('mpns_field class wins over a body class', sub {
    $t->post_json('/push/batched', { channel => $CH, text1 => 'Hi',
                                     class => 'immediate' });
}, sub {
    is($_[0]{hdr}{'x-notificationclass'}, '12', 'class 450 of the conf');
});

$t->delivered('unknown query args are ignored', sub {
    $t->http_get('/push?channel=' . uri_escape($CH)
                 . '&type=toast&text1=Hi&foo=bar&utm_source=x');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

$t->delivered('a query arg given twice is not a mistake', sub {
    $t->http_get('/hooks/order-shipped?channel=' . $CH
                 . '&order=42&foo=1&foo=2');
});

# mpns_field inheritance, like proxy_set_header

$t->delivered('server mpns_field applies to a location without any', sub {
    $t->http_get("/plain?channel=$CH", port => $t->port('inherit'));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'From server',
                              Sound => '/server.wav'), 'server fields');
});

$t->delivered('a location with its own mpns_field does not inherit', sub {
    $t->http_get("/own?channel=$CH", port => $t->port('inherit'));
}, sub {
    is($_[0]{body}, toast_xml(Text2 => 'From location'),
       'only the location field');
});

$t->delivered('a non-inherited field is left to the request', sub {
    $t->http_get("/own?channel=$CH&text1=Query",
                 port => $t->port('inherit'));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Query', Text2 => 'From location'),
       'query text1');
});

###############################################################################

# mistakes

$t->refused('unknown field in a JSON body', 400, 'unknown field', 'foo', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast',
                             text1 => 'Hi', foo => 'bar' });
});

$t->refused('unknown field in a form body', 400, 'unknown field', 'foo', sub {
    post_form('/push', 'channel=' . uri_escape($CH)
                       . '&type=toast&text1=Hi&foo=bar');
});

$t->refused('unknown field in the body of a webhook', 400, 'unknown field',
            'order', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH", { order => 42 });
});

$t->refused('duplicate JSON key', 400, 'duplicate field', 'text1', sub {
    $t->post_body('/push', 'application/json',
                  qq|{"channel":"$CH","type":"toast",|
                  . q|"text1":"a","text1":"b"}|);
});

$t->refused('duplicate form key', 400, 'duplicate field', 'text1', sub {
    post_form('/push', 'channel=' . uri_escape($CH)
                       . '&type=toast&text1=a&text1=b');
});

$t->refused('missing channel', 400, 'missing field', 'channel', sub {
    $t->post_json('/push/toast', { text1 => 'Hi' });
});

$t->refused('missing channel in a webhook', 400, 'missing field', 'channel',
            sub {
    $t->http_get('/hooks/order-shipped?order=42');
});

$t->refused('missing type', 400, 'missing field', 'type', sub {
    $t->post_json('/push', { channel => $CH, text1 => 'Hi' });
});

$t->refused('missing type in the query', 400, 'missing field', 'type', sub {
    $t->http_get('/push?text1=Hi&channel=' . uri_escape($CH));
});

$t->refused('invalid type', 400, 'invalid value', 'type', sub {
    $t->post_json('/push', { channel => $CH, type => 'banner',
                             text1 => 'Hi' });
});

$t->refused('toast without text1 or text2', 400, 'missing field', 'text1',
            sub {
    $t->post_json('/push/toast', { channel => $CH,
                                   param => '/Page.xaml' });
});

$t->refused('raw without payload', 400, 'missing field', 'payload', sub {
    $t->post_json('/push', { channel => $CH, type => 'raw' });
});

$t->refused('raw from the query without a body', 400, 'missing field',
            'payload', sub {
    $t->http_get('/push/raw?channel=' . uri_escape($CH));
});

$t->refused('tile with no property', 400, 'empty notification', 'type', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile' });
});

$t->refused('field not allowed for the type', 400,
            'field not allowed for this type', 'count', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   count => 3 });
});

for my $case (['truncated', qq|{"channel":"$CH","type":"toast"|],
              ['truncated string', qq|{"channel":"$CH","text1":"Hi|],
              ['trailing garbage',
               qq|{"channel":"$CH","type":"toast","text1":"Hi"}x|],
              ['a second object',
               qq|{"channel":"$CH","type":"toast","text1":"Hi"}{}|],
              ['top-level array', qq|[{"channel":"$CH"}]|],
              ['bare string', '"hello"'],
              ['trailing comma', qq|{"channel":"$CH",}|],
              ['single quotes', qq|{'channel':'$CH'}|],
              ['trailing comma in an array',
               qq|{"channel":"$CH","type":"tile","count":1,|
               . q|"clear":["title",]}|],
              ['a raw newline in a string',
               qq|{"channel":"$CH","text1":"a\nb"}|],
              ['a leading zero', qq|{"channel":"$CH","type":"tile",|
                                 . q|"count":01}|],
              ['a comma before the object',
               qq|,{"channel":"$CH","type":"toast","text1":"Hi"}|],
              ['a colon before the object',
               qq| :{"channel":"$CH","type":"toast","text1":"Hi"}|],
              ['a key without its value, last',
               qq|{"channel":"$CH","type":"toast","text1":}|],
              # more tokens than the parser's first pass takes
              ['truncated after many tokens',
               q|{"type":"toast","text1":"Hi","channels":[|
               . join(',', map { qq|"$CH/$_"| } 1 .. 40)],
              ['a wrong bracket after many tokens',
               q|{"type":"toast","text1":"Hi","channels":[|
               . join(',', map { qq|"$CH/$_"| } 1 .. 40) . '}}'])
{
    $t->refused("invalid json: $case->[0]", 400, 'invalid json', 'body', sub {
        $t->post_body('/push', 'application/json', $case->[1]);
    });
}

$t->refused('text/plain body', 415, 'unsupported content type', 'body', sub {
    $t->post_body('/push', 'text/plain', 'channel=x&type=toast');
});

$t->refused('body without Content-Type', 415, 'unsupported content type',
            'body', sub {
    $t->http('POST', '/push', body => '{"type":"toast"}');
});

for my $method (qw(PUT DELETE PATCH)) {
    $t->refused("method $method", 405, 'method not allowed', 'method', sub {
        $t->http($method, '/push', body => '{}',
                 headers => ['Content-Type' => 'application/json']);
    }, sub {
        is($_[0]{headers}{allow}, 'GET, POST', 'Allow: GET, POST');
    });
}

{
    my $json = json_body({ channel => $CH, type => 'toast', text1 => 'Hi' });

    $t->delivered('a body of exactly 16k', sub {
        $t->post_body('/push', 'application/json',
                      $json . ' ' x (16384 - length $json));
    });

    $t->refused('a body over 16k', 413, 'request body too large', 'body', sub {
        $t->post_body('/push', 'application/json',
                      $json . ' ' x (16385 - length $json));
    });
}

{
    my $json = json_body({ channel => $CH, text1 => 'Hi' });
    my $b100 = $json . ' ' x (100 - length $json);
    my $b101 = $b100 . ' ';

    $t->delivered('mpns_max_body_size 100: 100 bytes', sub {
        $t->post_body('/small', 'application/json', $b100);
    });

    $t->refused('mpns_max_body_size 100: 101 bytes', 413,
                'request body too large', 'body', sub {
        $t->post_body('/small', 'application/json', $b101);
    });

    $t->delivered('mpns_max_body_size 100: 100 bytes chunked', sub {
        post_chunked('/small', 'application/json',
                     substr($b100, 0, 60), substr($b100, 60));
    });

    $t->refused('mpns_max_body_size 100: 101 bytes chunked', 413,
                'request body too large', 'body', sub {
        post_chunked('/small', 'application/json',
                     substr($b101, 0, 60), substr($b101, 60));
    });

    $t->refused('mpns_max_body_size also limits raw pass-through', 413,
                'request body too large', 'body', sub {
        $t->post_body('/push/raw?channel=' . uri_escape($CH), 'text/xml',
                      'x' x 16385);
    });
}

$t->refused('invalid class', 400, 'invalid value', 'class', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   class => '5' });
});

$t->refused('class 12, a header value', 400, 'invalid value', 'class', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   class => '12' });
});

$t->refused('invalid silent', 400, 'invalid value', 'silent', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   silent => 'maybe' });
});

$t->refused('sound and silent', 400, 'sound and silent are exclusive',
            'silent', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   sound => '/a.wav',
                                   silent => JSON::PP::true });
});

$t->refused('clear of a non-tile field', 400, 'field cannot be cleared',
            'text1', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', title => 'T',
                             clear => ['text1'] });
});

$t->refused('clear and value of the same field', 400,
            'field both set and cleared', 'title', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', title => 'T',
                             count => 1, clear => ['title'] });
});

$t->refused('value then clear of the same field in JSON', 400,
            'field both set and cleared', 'title', sub {
    $t->post_body('/push', 'application/json',
                  qq|{"channel":"$CH","type":"tile","title":"T","count":1,|
                  . q|"clear":["title"]}|);
});

$t->refused('clear and value of the same field in a form', 400,
            'field both set and cleared', 'count', sub {
    post_form('/push', 'channel=' . uri_escape($CH)
                       . '&type=tile&count=1&clear=title,count');
});

$t->refused('clear then value of the same field in a form', 400,
            'field both set and cleared', 'count', sub {
    post_form('/push', 'channel=' . uri_escape($CH)
                       . '&type=tile&title=T&clear=count&count=1');
});

$t->refused('null and value of the same field', 400, 'duplicate field',
            'title', sub {
    $t->post_body('/push', 'application/json',
                  qq|{"channel":"$CH","type":"tile",|
                  . q|"title":null,"title":"T"}|);
});

$t->refused('clear as a JSON object', 400, 'invalid value', 'clear', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', title => 'T',
                             clear => {} });
});

$t->refused('count as a JSON object', 400, 'invalid value', 'count', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', count => {} });
});

$t->refused('count as a JSON array', 400, 'invalid value', 'count', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', count => [1] });
});

$t->refused('count over 99', 400, 'invalid value', 'count', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', count => 100 });
});

$t->refused('negative count', 400, 'invalid value', 'count', sub {
    $t->http_get('/push?type=tile&count=-1&channel=' . uri_escape($CH));
});

$t->refused('text1 as a JSON object', 400, 'invalid value', 'text1', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => { a => 1 } });
});

$t->refused('invalid message_id', 400, 'invalid value', 'message_id', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   message_id => 'not-a-uuid' });
});

$t->refused('invalid UTF-8 in a form field', 400, 'invalid character', 'text1',
            sub {
    post_form('/push', 'channel=' . uri_escape($CH)
                       . '&type=toast&text1=a%FFb');
});

$t->refused('invalid UTF-8 in a query field', 400, 'invalid character',
            'text2', sub {
    $t->http_get('/push?type=toast&text1=a&text2=%C3%28&channel='
                 . uri_escape($CH));
});

$t->refused('XML-illegal control character in JSON text', 400,
            'invalid character', 'text1', sub {
    $t->post_body('/push', 'application/json',
                  qq|{"channel":"$CH","type":"toast","text1":"a\\u0001b"}|);
});

###############################################################################

$t->done;
done_testing;
