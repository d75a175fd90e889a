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
use IO::Select;
use JSON::PP;
use Time::HiRes qw(time);

use lib 't/lib';
use MpnsTest;

my $t = MpnsTest->new;

$t->write_conf(<<'EOF_CONF');

%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

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
}

EOF_CONF

$t->sim_start;
$t->run;

my $CH = $t->sim_url('/throttledthirdparty/01.00/AAF');
my $XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>'
               . '<wp:Notification xmlns:wp="WPNotification">';

###############################################################################

# sends, expects one notification at the simulator; $check gets the recorded
# request and the answer
sub delivered {
    my ($name, $req, $check) = @_;

    subtest $name => sub {
        $t->sim_reset;
        my $mark = length $t->error_log;

        my $r = $req->();
        is($r->{status}, 200, 'answer 200') or diag($r->{raw});

        my $sims = $t->sim_requests;
        is(scalar @$sims, 1, 'one notification sent');
        is(join("\n", log_since($mark, 'error')), '', 'no [error] lines');

        $check->($sims->[0] // { hdr => {}, body => '' }, $r) if $check;
    };
}

# sends, expects a refusal: exact status and JSON, the info line, nothing
# sent; $check gets the answer
sub refused {
    my ($name, $status, $error, $field, $req, $check) = @_;

    subtest $name => sub {
        $t->sim_reset;
        my $mark = length $t->error_log;

        my $r = $req->();
        is($r->{status}, $status, "answer $status") or diag($r->{raw});
        like($r->{headers}{'content-type'} // '',
             qr{^application/json\s*(;.*)?$}, 'answer is application/json');
        is_deeply($r->{json}, { error => $error, field => $field },
                  qq{{"error":"$error","field":"$field"}})
            or diag($r->{body});
        is(scalar @{$t->sim_requests}, 0, 'nothing sent');

        my $line = qq{mpns request refused: $error, field "$field"};
        ok((grep { index($_, $line) >= 0 } log_since($mark, 'info')),
           'info log line')
            or diag(join "\n", log_since($mark, 'info'));

        $check->($r) if $check;
    };
}

sub log_since {
    my ($mark, $level) = @_;
    return grep { index($_, "[$level]") >= 0 }
           split /\n/, substr($t->error_log, $mark);
}

sub esc {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

# query('a' => 'b', ...): an encoded query string, in order
sub query {
    my @p = @_;
    return join '&', map { esc($p[2 * $_]) . '=' . esc($p[2 * $_ + 1]) }
                     0 .. @p / 2 - 1;
}

sub post_form {
    my ($uri, $body, %opts) = @_;
    return $t->http('POST', $uri, body => $body,
                    headers => ['Content-Type' => $opts{type}
                                    // 'application/x-www-form-urlencoded']);
}

sub post_body {
    my ($uri, $type, $body) = @_;
    return $t->http('POST', $uri, body => $body,
                    headers => ['Content-Type' => $type]);
}

sub toast_xml {
    my (%f) = @_;

    my $x = $XML_HEAD . '<wp:Toast>';

    for my $n (qw(Text1 Text2 Sound Param)) {
        $x .= "<wp:$n>$f{$n}</wp:$n>" if defined $f{$n};
    }

    return $x . '</wp:Toast></wp:Notification>';
}

sub json_body {
    return JSON::PP->new->utf8->canonical->encode($_[0]);
}

# a POST with a chunked body sent in the given pieces
sub post_chunked {
    my ($uri, $type, @pieces) = @_;

    my $s = $t->http_start('POST', $uri,
                           headers => ['Content-Type' => $type,
                                       'Transfer-Encoding' => 'chunked']);

    my $body = join '', map { sprintf("%x\r\n%s\r\n", length, $_) } @pieces;
    $body .= "0\r\n\r\n";
    $s->syswrite($body) == length $body or die "write: $!";

    my ($raw, $error, $sel) = ('', undef, IO::Select->new($s));
    my $end = time + 10 * $t->timeout_factor;

    while (1) {
        my $left = $end - time;
        if ($left <= 0 || !$sel->can_read($left)) {
            $error = 'timeout';
            last;
        }

        my $n = $s->sysread($raw, 65536, length $raw);
        last if !$n;
    }

    close $s;

    return MpnsTest::_parse_response($raw, $error);
}

###############################################################################

# input forms

my $hello = toast_xml(Text1 => "Hello W\xc3\xb6rld", Text2 => 'Second line');

delivered('a JSON body sends the notification', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast',
                             text1 => "Hello W\x{f6}rld",
                             text2 => 'Second line' });
}, sub {
    my ($s) = @_;
    is($s->{method}, 'POST', 'POST to the channel');
    is($s->{target}, '/throttledthirdparty/01.00/AAF', 'channel path');
    is($s->{body}, $hello, 'toast XML');
});

delivered('a form body with "+" and %XX reaches the same XML', sub {
    post_form('/push', 'channel=' . esc($CH)
                       . '&type=toast&text1=Hello+W%C3%B6rld'
                       . '&text2=Second+line');
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

delivered('query args reach the same XML', sub {
    $t->http_get('/push?channel=' . esc($CH)
                 . '&type=toast&text1=Hello%20W%C3%B6rld'
                 . '&text2=Second%20line');
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

delivered('"+" in the query is a space, as in a GET form', sub {
    $t->http_get('/push?channel=' . esc($CH)
                 . '&type=toast&text1=Hello+W%C3%B6rld&text2=Second+line');
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

delivered('the query channel needs no encoding', sub {
    $t->http_get("/push?channel=$CH&type=toast&text1=Hi");
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'channel path');
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('"application/json; charset=utf-8" is JSON', sub {
    post_body('/push', 'application/json; charset=utf-8',
              json_body({ channel => $CH, type => 'toast',
                          text1 => "Hello W\x{f6}rld",
                          text2 => 'Second line' }));
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

delivered('the media type is case-insensitive', sub {
    post_body('/push', 'Application/JSON',
              json_body({ channel => $CH, type => 'toast', text1 => 'Hi' }));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('a form with "; charset=UTF-8" is a form', sub {
    post_form('/push', 'channel=' . esc($CH) . '&type=toast&text1=Hi',
              type => 'application/x-www-form-urlencoded; charset=UTF-8');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('JSON \\u escapes are decoded', sub {
    post_body('/push', 'application/json',
              qq|{"channel":"$CH","type":"toast",|
              . q|"text1":"Hello W\u00f6rld","text2":"Second\u0020line"}|);
}, sub {
    is($_[0]{body}, $hello, 'toast XML');
});

delivered('JSON whitespace around and after the object', sub {
    post_body('/push', 'application/json',
              qq|\r\n { "channel" : "$CH" ,\n\t"type":"toast", |
              . qq|"text1" : "Hi" }\n|);
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('unquoted JSON numbers and booleans', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile',
                             count => 7, title => 'T' });
}, sub {
    like($_[0]{body}, qr{<wp:Count>7</wp:Count>}, 'count 7');
});

delivered('unquoted JSON true for silent', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast', text1 => 'Hi',
                             silent => JSON::PP::true });
}, sub {
    like($_[0]{body}, qr{<wp:Sound Silent="true"\s*/>}, 'silent toast');
});

{
    my $clear;

    delivered('JSON null clears a tile property', sub {
        $t->post_json('/push', { channel => $CH, type => 'tile', count => 3,
                                 title => undef });
    }, sub {
        $clear = $_[0]{body};
        like($clear, qr{<wp:Title Action="Clear"}, 'title cleared');
    });

    delivered('clear as a JSON array is the same as null', sub {
        $t->post_json('/push', { channel => $CH, type => 'tile', count => 3,
                                 clear => ['title'] });
    }, sub {
        is($_[0]{body}, $clear, 'same XML');
    });

    delivered('clear as a comma-separated form value', sub {
        post_form('/push', 'channel=' . esc($CH)
                           . '&type=tile&count=3&clear=title');
    }, sub {
        is($_[0]{body}, $clear, 'same XML');
    });
}

delivered('a camelCase alias in a form body', sub {
    post_form('/push', 'channel=' . esc($CH) . '&type=toast&text1=Hi'
                       . '&messageId=ABCDEF01-2345-6789-ABCD-EF0123456789');
}, sub {
    is($_[0]{hdr}{'x-messageid'}, 'abcdef01-2345-6789-abcd-ef0123456789',
       'X-MessageID, lower-cased');
});

delivered('an empty POST body with query args', sub {
    $t->http('POST', '/push?channel=' . esc($CH) . '&type=toast&text1=Hi',
             body => '');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('an empty JSON-typed body with query args', sub {
    post_body('/push?channel=' . esc($CH) . '&type=toast&text1=Hi',
              'application/json', '');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('an empty form body with query args', sub {
    post_form('/push?channel=' . esc($CH) . '&type=toast&text1=Hi', '');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('a body spooled to a temp file is read', sub {
    post_body('/spooled', 'application/json',
              json_body({ channel => $CH, text1 => 'Hi' }) . ' ' x 4000);
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('a chunked JSON body', sub {
    my $json = json_body({ channel => $CH, type => 'toast', text1 => 'Hi' });
    post_chunked('/push', 'application/json',
                 substr($json, 0, 10), substr($json, 10));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

# raw: the body is the payload unless the channel comes from the body

delivered('raw pass-through sends the body byte for byte', sub {
    post_body('/push/raw?channel=' . esc($CH), 'application/octet-stream',
              "\x00\x01binary\xff\xfe\r\n{}");
}, sub {
    my ($s) = @_;
    is($s->{body}, "\x00\x01binary\xff\xfe\r\n{}", 'payload bytes');
    is($s->{hdr}{'content-type'}, 'application/octet-stream',
       'request Content-Type');
    ok(!exists $s->{hdr}{'x-windowsphone-target'}, 'no target header');
});

delivered('raw pass-through does not parse a JSON body', sub {
    post_body('/push?type=raw&channel=' . esc($CH), 'application/json',
              '{"payload":"x","nosuch":1}');
}, sub {
    is($_[0]{body}, '{"payload":"x","nosuch":1}', 'JSON bytes as payload');
    is($_[0]{hdr}{'content-type'}, 'application/json',
       'request Content-Type');
});

delivered('raw pass-through without Content-Type is text/xml', sub {
    $t->http('POST', '/push/raw?channel=' . esc($CH), body => '<a>1</a>');
}, sub {
    is($_[0]{body}, '<a>1</a>', 'payload bytes');
    is($_[0]{hdr}{'content-type'}, 'text/xml', 'text/xml');
});

delivered('raw with the channel in the body uses the payload field', sub {
    $t->post_json('/push/raw', { channel => $CH, payload => '<p>x</p>' });
}, sub {
    is($_[0]{body}, '<p>x</p>', 'payload field');
});

###############################################################################

# precedence: nginx.conf > body > query, field by field

delivered('webhook: conf text1, text2 from $arg_order', sub {
    $t->http_get("/hooks/order-shipped?channel=$CH&order=42");
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'conf channel');
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '42'),
       'toast XML');
});

delivered('a body text1 does not override the conf text1', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH&order=42",
                  { text1 => 'From body' });
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '42'),
       'conf text1');
});

delivered('a query text1 does not override the conf text1', sub {
    $t->http_get("/hooks/order-shipped?channel=$CH&order=42&text1=Query");
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '42'),
       'conf text1');
});

delivered('the conf channel wins over a body channel', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH&order=42",
                  { channel => $t->sim_url('/other/BODY') });
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'conf channel');
});

delivered('an empty mpns_field sets nothing', sub {
    $t->http_get("/hooks/order-shipped?channel=$CH");
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped'), 'no Text2');
});

delivered('an empty mpns_field leaves the field to the body', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH",
                  { text2 => 'From body' });
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped',
                              Text2 => 'From body'), 'body text2');
});

delivered('an empty mpns_channel leaves the channel to the body', sub {
    $t->post_json('/hooks/order-shipped?order=7', { channel => $CH });
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'body channel');
    is($_[0]{body}, toast_xml(Text1 => 'Order shipped', Text2 => '7'),
       'toast XML');
});

delivered('the body wins over the query, field by field', sub {
    $t->post_json('/push?type=tile&text1=Query1&text2=Query2',
                  { channel => $CH, type => 'toast', text1 => 'Body1' });
}, sub {
    is($_[0]{hdr}{'x-windowsphone-target'}, 'toast', 'body type');
    is($_[0]{body}, toast_xml(Text1 => 'Body1', Text2 => 'Query2'),
       'body text1, query text2');
});

delivered('a form body wins over the query', sub {
    post_form('/push?channel=' . esc($t->sim_url('/other/QUERY'))
              . '&type=toast&text1=Query', 'text1=Form&channel=' . esc($CH));
}, sub {
    is($_[0]{target}, '/throttledthirdparty/01.00/AAF', 'body channel');
    is($_[0]{body}, toast_xml(Text1 => 'Form'), 'body text1');
});

delivered('mpns_send toast wins over a body type tile', sub {
    $t->post_json('/push/toast', { channel => $CH, type => 'tile',
                                   text1 => 'Hi' });
}, sub {
    is($_[0]{hdr}{'x-windowsphone-target'}, 'toast', 'toast target');
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('mpns_send toast wins over a query type tile', sub {
    $t->http_get('/push/toast?type=tile&text1=Hi&channel=' . esc($CH));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('mpns_field class wins over a body class', sub {
    $t->post_json('/push/batched', { channel => $CH, text1 => 'Hi',
                                     class => 'immediate' });
}, sub {
    is($_[0]{hdr}{'x-notificationclass'}, '12', 'class 450 of the conf');
});

delivered('unknown query args are ignored', sub {
    $t->http_get('/push?channel=' . esc($CH)
                 . '&type=toast&text1=Hi&foo=bar&utm_source=x');
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Hi'), 'toast XML');
});

delivered('a query arg given twice is not a mistake', sub {
    $t->http_get('/hooks/order-shipped?channel=' . $CH
                 . '&order=42&foo=1&foo=2');
});

# mpns_field inheritance, like proxy_set_header

delivered('server mpns_field applies to a location without any', sub {
    $t->http_get("/plain?channel=$CH", port => $t->port('inherit'));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'From server',
                              Sound => '/server.wav'), 'server fields');
});

delivered('a location with its own mpns_field does not inherit', sub {
    $t->http_get("/own?channel=$CH", port => $t->port('inherit'));
}, sub {
    is($_[0]{body}, toast_xml(Text2 => 'From location'),
       'only the location field');
});

delivered('a non-inherited field is left to the request', sub {
    $t->http_get("/own?channel=$CH&text1=Query",
                 port => $t->port('inherit'));
}, sub {
    is($_[0]{body}, toast_xml(Text1 => 'Query', Text2 => 'From location'),
       'query text1');
});

###############################################################################

# mistakes

refused('unknown field in a JSON body', 400, 'unknown field', 'foo', sub {
    $t->post_json('/push', { channel => $CH, type => 'toast',
                             text1 => 'Hi', foo => 'bar' });
});

refused('unknown field in a form body', 400, 'unknown field', 'foo', sub {
    post_form('/push', 'channel=' . esc($CH)
                       . '&type=toast&text1=Hi&foo=bar');
});

refused('unknown field in the body of a webhook', 400, 'unknown field',
        'order', sub {
    $t->post_json("/hooks/order-shipped?channel=$CH", { order => 42 });
});

refused('duplicate JSON key', 400, 'duplicate field', 'text1', sub {
    post_body('/push', 'application/json',
              qq|{"channel":"$CH","type":"toast","text1":"a","text1":"b"}|);
});

refused('duplicate form key', 400, 'duplicate field', 'text1', sub {
    post_form('/push', 'channel=' . esc($CH)
                       . '&type=toast&text1=a&text1=b');
});

refused('missing channel', 400, 'missing field', 'channel', sub {
    $t->post_json('/push/toast', { text1 => 'Hi' });
});

refused('missing channel in a webhook', 400, 'missing field', 'channel',
        sub {
    $t->http_get('/hooks/order-shipped?order=42');
});

refused('missing type', 400, 'missing field', 'type', sub {
    $t->post_json('/push', { channel => $CH, text1 => 'Hi' });
});

refused('missing type in the query', 400, 'missing field', 'type', sub {
    $t->http_get('/push?text1=Hi&channel=' . esc($CH));
});

refused('invalid type', 400, 'invalid value', 'type', sub {
    $t->post_json('/push', { channel => $CH, type => 'banner',
                             text1 => 'Hi' });
});

refused('toast without text1 or text2', 400, 'missing field', 'text1', sub {
    $t->post_json('/push/toast', { channel => $CH,
                                   param => '/Page.xaml' });
});

refused('raw without payload', 400, 'missing field', 'payload', sub {
    $t->post_json('/push', { channel => $CH, type => 'raw' });
});

refused('raw from the query without a body', 400, 'missing field',
        'payload', sub {
    $t->http_get('/push/raw?channel=' . esc($CH));
});

refused('tile with no property', 400, 'empty notification', 'type', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile' });
});

refused('field not allowed for the type', 400,
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
                                 . q|"count":01}|])
{
    refused("invalid json: $case->[0]", 400, 'invalid json', 'body', sub {
        post_body('/push', 'application/json', $case->[1]);
    });
}

refused('text/plain body', 415, 'unsupported content type', 'body', sub {
    post_body('/push', 'text/plain', 'channel=x&type=toast');
});

refused('body without Content-Type', 415, 'unsupported content type',
        'body', sub {
    $t->http('POST', '/push', body => '{"type":"toast"}');
});

for my $method (qw(PUT DELETE PATCH)) {
    refused("method $method", 405, 'method not allowed', 'method', sub {
        $t->http($method, '/push', body => '{}',
                 headers => ['Content-Type' => 'application/json']);
    }, sub {
        is($_[0]{headers}{allow}, 'GET, POST', 'Allow: GET, POST');
    });
}

{
    my $json = json_body({ channel => $CH, type => 'toast', text1 => 'Hi' });

    delivered('a body of exactly 16k', sub {
        post_body('/push', 'application/json',
                  $json . ' ' x (16384 - length $json));
    });

    refused('a body over 16k', 413, 'request body too large', 'body', sub {
        post_body('/push', 'application/json',
                  $json . ' ' x (16385 - length $json));
    });
}

{
    my $json = json_body({ channel => $CH, text1 => 'Hi' });
    my $b100 = $json . ' ' x (100 - length $json);
    my $b101 = $b100 . ' ';

    delivered('mpns_max_body_size 100: 100 bytes', sub {
        post_body('/small', 'application/json', $b100);
    });

    refused('mpns_max_body_size 100: 101 bytes', 413,
            'request body too large', 'body', sub {
        post_body('/small', 'application/json', $b101);
    });

    delivered('mpns_max_body_size 100: 100 bytes chunked', sub {
        post_chunked('/small', 'application/json',
                     substr($b100, 0, 60), substr($b100, 60));
    });

    refused('mpns_max_body_size 100: 101 bytes chunked', 413,
            'request body too large', 'body', sub {
        post_chunked('/small', 'application/json',
                     substr($b101, 0, 60), substr($b101, 60));
    });

    refused('mpns_max_body_size also limits raw pass-through', 413,
            'request body too large', 'body', sub {
        post_body('/push/raw?channel=' . esc($CH), 'text/xml', 'x' x 16385);
    });
}

refused('invalid class', 400, 'invalid value', 'class', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   class => '5' });
});

refused('class 12, a header value', 400, 'invalid value', 'class', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   class => '12' });
});

refused('invalid silent', 400, 'invalid value', 'silent', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   silent => 'maybe' });
});

refused('sound and silent', 400, 'sound and silent are exclusive', 'silent',
        sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   sound => '/a.wav',
                                   silent => JSON::PP::true });
});

refused('clear of a non-tile field', 400, 'field cannot be cleared',
        'text1', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', title => 'T',
                             clear => ['text1'] });
});

refused('clear and value of the same field', 400,
        'field both set and cleared', 'title', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', title => 'T',
                             count => 1, clear => ['title'] });
});

refused('value then clear of the same field in JSON', 400,
        'field both set and cleared', 'title', sub {
    post_body('/push', 'application/json',
              qq|{"channel":"$CH","type":"tile","title":"T","count":1,|
              . q|"clear":["title"]}|);
});

refused('clear and value of the same field in a form', 400,
        'field both set and cleared', 'count', sub {
    post_form('/push', 'channel=' . esc($CH)
                       . '&type=tile&count=1&clear=title,count');
});

refused('clear then value of the same field in a form', 400,
        'field both set and cleared', 'count', sub {
    post_form('/push', 'channel=' . esc($CH)
                       . '&type=tile&title=T&clear=count&count=1');
});

refused('null and value of the same field', 400, 'duplicate field',
        'title', sub {
    post_body('/push', 'application/json',
              qq|{"channel":"$CH","type":"tile","title":null,"title":"T"}|);
});

refused('clear as a JSON object', 400, 'invalid value', 'clear', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', title => 'T',
                             clear => {} });
});

refused('count as a JSON object', 400, 'invalid value', 'count', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', count => {} });
});

refused('count as a JSON array', 400, 'invalid value', 'count', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', count => [1] });
});

refused('count over 99', 400, 'invalid value', 'count', sub {
    $t->post_json('/push', { channel => $CH, type => 'tile', count => 100 });
});

refused('negative count', 400, 'invalid value', 'count', sub {
    $t->http_get('/push?type=tile&count=-1&channel=' . esc($CH));
});

refused('text1 as a JSON object', 400, 'invalid value', 'text1', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => { a => 1 } });
});

refused('invalid message_id', 400, 'invalid value', 'message_id', sub {
    $t->post_json('/push/toast', { channel => $CH, text1 => 'Hi',
                                   message_id => 'not-a-uuid' });
});

refused('invalid UTF-8 in a form field', 400, 'invalid character', 'text1',
        sub {
    post_form('/push', 'channel=' . esc($CH) . '&type=toast&text1=a%FFb');
});

refused('invalid UTF-8 in a query field', 400, 'invalid character',
        'text2', sub {
    $t->http_get('/push?type=toast&text1=a&text2=%C3%28&channel='
                 . esc($CH));
});

refused('XML-illegal control character in JSON text', 400,
        'invalid character', 'text1', sub {
    post_body('/push', 'application/json',
              qq|{"channel":"$CH","type":"toast","text1":"a\\u0001b"}|);
});

###############################################################################

$t->done;
done_testing;
