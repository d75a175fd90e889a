#!/usr/bin/perl

# Input built to hurt (docs/api.md "Mistakes"): JSON bodies of a megabyte
# of tokens are parsed in time proportional to their size and answered
# like any other mistake, well within the client's 10 s timeout; nesting
# deeper than 32 levels is refused before it is parsed, in a send, a
# registration and a deletion, while brackets inside strings do not count;
# a raw pass-through's Content-Type is kept whole in the background, up
# to 255 bytes, and refused beyond, a payload up to 64k - 1 bytes, and a
# larger limit with an outbox is a configuration error; broadcast filters
# are UTF-8.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use MpnsTest qw(http_conf uri_escape);

my $t = MpnsTest->new;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts  ^127\.0\.0\.1$;

    mpns_registry_zone  zone=devices:1m;
    mpns_outbox_zone    zone=out:1m;
    mpns_outbox_zone    zone=big:1m;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        mpns_max_body_size       2m;
        client_body_buffer_size  2m;

        location = /push     { mpns_send; }
        location = /channels { mpns_registry devices; }
        location = /broadcast { mpns_broadcast devices toast; }

        location = /push/raw {
            mpns_send              raw;
            mpns_max_payload_size  8k;
        }

        location /bg/raw {
            mpns_send              raw;
            mpns_outbox            out;
            mpns_mode              background;
            mpns_max_payload_size  8k;
        }

        location /bg/big {
            mpns_send              raw;
            mpns_outbox            big;
            mpns_mode              background;
            mpns_max_payload_size  65535;
        }
    }

EOF_CONF

$t->sim_start;
$t->run;

my $CH = $t->sim_url('/throttledthirdparty/01.00/AAF');

sub json { $t->post_body($_[0], 'application/json', $_[1]) }

###############################################################################

# a megabyte of tokens; each was seconds to minutes of one worker when
# every closing bracket searched the tokens before it

my $arrays = join ',', ('[]') x 340000;

$t->refused('a megabyte of empty arrays in a field', 400, 'invalid value',
            'clear', sub {
    json('/push', qq|{"channel":"$CH","type":"tile","clear":[$arrays]}|);
});

$t->refused('a megabyte of empty arrays at the top', 400, 'invalid json',
            'body', sub {
    json('/push', "[$arrays]");
});

$t->refused('members after a large array', 400, 'unknown field', 'a', sub {
    json('/push', '{"a":[' . join(',', ('[]') x 150000) . '],'
                  . join(',', map { qq|"k$_":0| } 1 .. 50000) . '}');
});

$t->refused('a megabyte of empty arrays in a registration', 400,
            'invalid value', 'tags', sub {
    json('/channels', qq|{"channel":"$CH","tags":[$arrays]}|);
});

# nesting: 32 levels are parsed, 33 are not

sub nest { my ($n, $in) = @_; ('[' x $n) . ($in // '') . (']' x $n) }

$t->refused('32 levels are parsed', 400, 'invalid value', 'clear', sub {
    json('/push', qq|{"channel":"$CH","type":"tile","clear":| . nest(31)
                  . '}');
});

$t->refused('33 levels are refused', 400, 'json nested too deeply', 'body',
            sub {
    json('/push', qq|{"channel":"$CH","type":"tile","clear":| . nest(32)
                  . '}');
});

$t->refused('33 levels of objects are refused', 400,
            'json nested too deeply', 'body', sub {
    json('/push', ('{"a":' x 33) . '1' . ('}' x 33));
});

$t->refused('half a million levels', 400, 'json nested too deeply', 'body',
            sub {
    json('/push', nest(500000));
});

$t->refused('half a million opening brackets', 400,
            'json nested too deeply', 'body', sub {
    json('/push', '[' x 500000);
});

$t->refused('deep nesting in a registration', 400, 'json nested too deeply',
            'body', sub {
    json('/channels', qq|{"channel":"$CH","tags":| . nest(40) . '}');
});

$t->refused('deep nesting in a deletion', 400, 'json nested too deeply',
            'body', sub {
    $t->http('DELETE', '/channels', body => '{"device":' . nest(40) . '}',
             headers => ['Content-Type' => 'application/json']);
});

{
    my $text = '[{\"[' x 100;

    $t->delivered('brackets in a string do not nest', sub {
        json('/push', qq|{"channel":"$CH","type":"toast",|
                      . qq|"text1":"$text"}|);
    }, sub {
        my $sent = '<wp:Text1>' . ('[{"[' x 100) . '</wp:Text1>';
        ok(index($_[0]{body}, $sent) >= 0, 'text sent') or diag($_[0]{body});
    });
}

###############################################################################

# broadcast filters: kept in JSON by a background broadcast, so UTF-8

$t->refused('invalid UTF-8 in a user filter', 400, 'invalid character',
            'user', sub {
    json('/broadcast', qq|{"text1":"Hi","user":"a\xffb"}|);
});

$t->refused('invalid UTF-8 in a tag filter from the query', 400,
            'invalid character', 'tag', sub {
    json('/broadcast?tag=a%C3', '{"text1":"Hi"}');
});

$t->refused('a control character in an os filter', 400, 'invalid character',
            'os', sub {
    json('/broadcast', '{"text1":"Hi","os":"8\u0000"}');
});

###############################################################################

# a raw pass-through's Content-Type

my $ct255 = 'application/x-' . ('a' x 241);
my $ct256 = $ct255 . 'b';

is(length $ct255, 255, '255 bytes');

$t->delivered('a Content-Type of 255 bytes', sub {
    $t->post_body('/push/raw?channel=' . uri_escape($CH), $ct255, 'BODY');
}, sub {
    is($_[0]{hdr}{'content-type'}, $ct255, 'Content-Type as given');
    is($_[0]{body}, 'BODY', 'body as given');
});

subtest 'a Content-Type of 255 bytes in the background' => sub {
    $t->sim_reset;

    my $r = $t->post_body('/bg/raw?channel=' . uri_escape($CH), $ct255,
                          'BODY');
    is($r->{status}, 202, 'answer 202') or diag($r->{raw});

    my $sims = [];
    $t->wait_for(sub { @{$sims = $t->sim_requests} }, 5);

    is(scalar @$sims, 1, 'sent');
    is($sims->[0]{hdr}{'content-type'}, $ct255, 'Content-Type as given');
    is($sims->[0]{body}, 'BODY', 'body as given');
};

for my $uri ('/push/raw', '/bg/raw') {
    $t->refused("a Content-Type of 256 bytes at $uri", 400,
                'value too long', 'content_type', sub {
        $t->post_body("$uri?channel=" . uri_escape($CH), $ct256, 'BODY');
    });
}

# an outbox keeps a payload of up to 64k - 1 bytes whole

subtest 'a raw payload of 65535 bytes in the background' => sub {
    $t->sim_reset;

    my $body = join '', map { chr(ord('a') + $_ % 26) } 0 .. 65534;

    my $r = $t->post_body('/bg/big?channel=' . uri_escape($CH),
                          'text/plain', $body);
    is($r->{status}, 202, 'answer 202') or diag($r->{raw});

    my $sims = [];
    $t->wait_for(sub { @{$sims = $t->sim_requests} }, 5);

    is(scalar @$sims, 1, 'sent');
    ok(($sims->[0]{body} // '') eq $body, 'body as given')
        or diag(length($sims->[0]{body} // '') . ' bytes sent');
};

{
    my ($rc, $out) = $t->nginx_test(http_conf(<<'EOF_CONF'));

    mpns_outbox_zone  zone=o:1m;

    server {
        listen  127.0.0.1:%%PORT%%;

        location /bg {
            mpns_send              raw;
            mpns_outbox            o;
            mpns_max_payload_size  64k;
        }
    }

EOF_CONF

    my $emerg = '[emerg] "mpns_max_payload_size" must be less than 64k '
                . 'with "mpns_outbox"';

    ok($rc != 0 && index($out, $emerg) >= 0,
       'config: a payload limit of 64k with an outbox') or diag($out);
}

$t->done;

done_testing;
