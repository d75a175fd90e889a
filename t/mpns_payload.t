#!/usr/bin/perl

# The notification body the module sends to MPNS, byte for byte: every
# notification type and field in MSDN's element order, escaping, UTF-8,
# Action="Clear", npm camelCase aliases, raw payloads and raw pass-through,
# and the requests refused before anything is sent (docs/api.md).

use strict;
use warnings;

use Test::More;
use Encode qw(encode_utf8);

use lib 't/lib';
use MpnsTest qw(http_conf uri_escape);

my $t = MpnsTest->new;

$t->sim_start;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /push {
            mpns_send;
        }

        location = /push2k {
            mpns_send;
            mpns_max_payload_size 2k;
        }

        location = /raw {
            mpns_send raw;
            mpns_channel $arg_channel;
        }
    }

EOF_CONF

$t->run;

my $CH = $t->sim_url('/throttledthirdparty/01.00/AAF');
my $JSON = JSON::PP->new->utf8->canonical;

###############################################################################

# expected documents

my $DECL = '<?xml version="1.0" encoding="utf-8"?>';

sub toast_xml {
    return $DECL . '<wp:Notification xmlns:wp="WPNotification"><wp:Toast>'
           . $_[0] . '</wp:Toast></wp:Notification>';
}

sub tile_xml {
    my ($attrs, $children) = @_;
    return $DECL . '<wp:Notification xmlns:wp="WPNotification">'
           . "<wp:Tile$attrs>$children</wp:Tile></wp:Notification>";
}

sub v2_xml {
    my ($attrs, $children) = @_;
    return $DECL . '<wp:Notification xmlns:wp="WPNotification" Version="2.0">'
           . "<wp:Tile$attrs>$children</wp:Tile></wp:Notification>";
}

# el('Title', 'T') -> <wp:Title>T</wp:Title>
sub el { "<wp:$_[0]>$_[1]</wp:$_[0]>" }

sub cleared { "<wp:$_[0] Action=\"Clear\"></wp:$_[0]>" }

# helpers

# send_ok($name, $send, $expected_body): $send is a hash (JSON-encoded with
# the channel added), a JSON string, or a code ref returning the answer.
# Checks 200 from the simulator, exactly one request and its body bytes.
# Returns the recorded request.

sub do_send {
    my ($send, $uri) = @_;

    return $send->() if ref $send eq 'CODE';

    return $t->post_json($uri // '/push', { channel => $CH, %$send })
        if ref $send eq 'HASH';

    return $t->post_json($uri // '/push', $send);
}

sub send_ok {
    my ($name, $send, $expected, %opts) = @_;

    my $req;

    subtest $name => sub {
        $t->sim_reset;
        my $log = $t->log_mark;

        my $r = do_send($send, $opts{uri});

        is($r->{status}, $opts{status} // 200, 'answer status')
            or diag($r->{raw});

        my $reqs = $t->sim_requests;
        is(scalar @$reqs, 1, 'one notification sent');
        $req = $reqs->[0] // { body => undef, hdr => {} };

        is($req->{body}, $expected, 'body bytes');

        if (!$opts{errors_ok}) {
            is(join("\n", $t->log_since('error', $log)), '',
               'no [error] in the log');
        }
    };

    return $req;
}

# refused($name, $send, $status, $error, $field, uri => ...): $send
# (as for send_ok) is refused: see refused in the harness.

sub refused {
    my ($name, $send, $status, $error, $field, %opts) = @_;
    $t->refused($name, $status, $error, $field,
                sub { do_send($send, $opts{uri}) });
}

###############################################################################

# toast

send_ok('toast with text1 only',
        { type => 'toast', text1 => 'Hello' },
        '<?xml version="1.0" encoding="utf-8"?><wp:Notification '
        . 'xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Hello</wp:Text1>'
        . '</wp:Toast></wp:Notification>');

send_ok('toast with text2 only',
        { type => 'toast', text2 => 'World' },
        toast_xml(el(Text2 => 'World')));

send_ok('toast with text1 and text2',
        { type => 'toast', text1 => 'Hello', text2 => 'World' },
        toast_xml(el(Text1 => 'Hello') . el(Text2 => 'World')));

send_ok('toast with param',
        { type => 'toast', text1 => 'Hello', text2 => 'World',
          param => '/Page.xaml?id=7' },
        toast_xml(el(Text1 => 'Hello') . el(Text2 => 'World')
                  . el(Param => '/Page.xaml?id=7')));

send_ok('toast with sound between text2 and param',
        { type => 'toast', text1 => 'Hello', text2 => 'World',
          sound => '/Assets/ding.wav', param => '/Page.xaml' },
        toast_xml(el(Text1 => 'Hello') . el(Text2 => 'World')
                  . el(Sound => '/Assets/ding.wav')
                  . el(Param => '/Page.xaml')));

send_ok('silent toast sends Sound Silent="true" in the Sound position',
        { type => 'toast', text1 => 'Hello', text2 => 'World',
          silent => JSON::PP::true, param => '/Page.xaml' },
        toast_xml(el(Text1 => 'Hello') . el(Text2 => 'World')
                  . '<wp:Sound Silent="true"/>'
                  . el(Param => '/Page.xaml')));

send_ok('silent false sends no Sound',
        { type => 'toast', text1 => 'Hello', silent => JSON::PP::false },
        toast_xml(el(Text1 => 'Hello')));

send_ok('toast element order does not follow the JSON key order',
        '{"param":"/P.xaml","sound":"/s.wav","text2":"World",'
        . '"text1":"Hello","type":"toast","channel":"' . $CH . '"}',
        toast_xml(el(Text1 => 'Hello') . el(Text2 => 'World')
                  . el(Sound => '/s.wav') . el(Param => '/P.xaml')));

# escaping

send_ok('text escapes & < > and leaves quotes alone',
        { type => 'toast', text1 => q{Bold <&> "q" 'a'} },
        toast_xml(el(Text1 => q{Bold &lt;&amp;&gt; "q" 'a'})));

send_ok('param escapes &',
        { type => 'toast', text1 => 'Hi', param => '/Page.xaml?a=1&b=2' },
        toast_xml(el(Text1 => 'Hi') . el(Param => '/Page.xaml?a=1&amp;b=2')));

send_ok('tile id attribute escapes & and "',
        { type => 'tile', id => '/Sec.xaml?x=1&y=2&q="z"', title => 'T' },
        tile_xml(' Id="/Sec.xaml?x=1&amp;y=2&amp;q=&quot;z&quot;"',
                 el(Title => 'T')));

send_ok('tile id attribute escapes < and >',
        { type => 'tile', id => '/Sec.xaml?q=<a>', title => 'T' },
        tile_xml(' Id="/Sec.xaml?q=&lt;a&gt;"', el(Title => 'T')));

send_ok('an entity-looking text is escaped, not passed through',
        { type => 'toast', text1 => 'A &amp; B &#38;' },
        toast_xml(el(Text1 => 'A &amp;amp; B &amp;#38;')));

# UTF-8

my $utf8_text = "\x{41f}\x{440}\x{438}\x{432}\x{435}\x{442} \x{1F600}";
my $utf8_xml = toast_xml(el(Text1 => encode_utf8($utf8_text)));

send_ok('Cyrillic and emoji sent as the same UTF-8 bytes',
        { type => 'toast', text1 => $utf8_text }, $utf8_xml);

send_ok('\u escapes incl. a surrogate pair give the same UTF-8 bytes',
        '{"channel":"' . $CH . '","type":"toast","text1":'
        . '"\u041f\u0440\u0438\u0432\u0435\u0442 \ud83d\ude00"}',
        $utf8_xml);

send_ok('query string text is percent-decoded UTF-8',
        sub {
            $t->http_get('/push?type=toast&channel=' . uri_escape($CH)
                         . '&text1=Hello%20W%C3%B6rld%20%26%20co');
        },
        toast_xml(el(Text1 => "Hello W\xc3\xb6rld &amp; co")));

send_ok('form body text is decoded, + as space',
        sub {
            $t->http('POST', '/push',
                     headers => ['Content-Type'
                                 => 'application/x-www-form-urlencoded'],
                     body => 'channel=' . uri_escape($CH)
                             . '&type=toast&text1=A+%3C%26%3E+B'
                             . '&param=%2FP.xaml%3Fa%3D1%26b%3D2');
        },
        toast_xml(el(Text1 => 'A &lt;&amp;&gt; B')
                  . el(Param => '/P.xaml?a=1&amp;b=2')));

# WP7 tile

send_ok('tile with every field in MSDN order, with Id',
        '{"back_content":"BC","back_title":"BT",'
        . '"back_background_image":"/b.png","title":"T","count":5,'
        . '"background_image":"http://x/y.png","id":"/Sec.xaml",'
        . '"type":"tile","channel":"' . $CH . '"}',
        tile_xml(' Id="/Sec.xaml"',
                 el(BackgroundImage => 'http://x/y.png') . el(Count => 5)
                 . el(Title => 'T') . el(BackBackgroundImage => '/b.png')
                 . el(BackTitle => 'BT') . el(BackContent => 'BC')));

send_ok('primary tile has no Id',
        { type => 'tile', background_image => '/bg.png', count => 5,
          title => 'T' },
        tile_xml('', el(BackgroundImage => '/bg.png') . el(Count => 5)
                     . el(Title => 'T')));

send_ok('count 0 is sent as 0',
        { type => 'tile', count => 0 },
        tile_xml('', el(Count => 0)));

send_ok('count 99 is sent',
        { type => 'tile', count => 99 },
        tile_xml('', el(Count => 99)));

send_ok('count given as a string',
        { type => 'tile', count => '7' },
        tile_xml('', el(Count => 7)));

send_ok('empty title sends an empty element',
        { type => 'tile', count => 3, title => '' },
        tile_xml('', el(Count => 3) . '<wp:Title></wp:Title>'));

# WP8 templates

my %flip = (small_background_image => 's.png',
            wide_background_image => 'w.png',
            wide_back_background_image => 'wbb.png',
            wide_back_content => 'wbc',
            background_image => 'b.png', count => 3, title => 'T',
            back_background_image => 'bb.png', back_title => 'BT',
            back_content => 'BC');

my $flip_children = el(SmallBackgroundImage => 's.png')
    . el(WideBackgroundImage => 'w.png')
    . el(WideBackBackgroundImage => 'wbb.png')
    . el(WideBackContent => 'wbc')
    . el(BackgroundImage => 'b.png') . el(Count => 3) . el(Title => 'T')
    . el(BackBackgroundImage => 'bb.png') . el(BackTitle => 'BT')
    . el(BackContent => 'BC');

send_ok('flip tile with every field in MSDN order, Id before Template',
        { type => 'flip', id => '/F.xaml', %flip },
        v2_xml(' Id="/F.xaml" Template="FlipTile"', $flip_children));

send_ok('flip tile without Id',
        { type => 'flip', %flip },
        v2_xml(' Template="FlipTile"', $flip_children));

my $cycle_children = el(SmallBackgroundImage => 's.png')
    . join('', map { el("CycleImage$_" => "/c$_.png") } 1 .. 9)
    . el(Count => 4) . el(Title => 'T');

send_ok('cycle tile images given out of order come out 1..9',
        '{"title":"T","count":4,'
        . join('', map { qq{"cycle_image$_":"/c$_.png",} }
                       9, 3, 7, 1, 5, 2, 8, 4, 6)
        . '"small_background_image":"s.png","id":"/C.xaml",'
        . '"type":"cycle","channel":"' . $CH . '"}',
        v2_xml(' Id="/C.xaml" Template="CycleTile"', $cycle_children));

send_ok('cycle tile without Id',
        { type => 'cycle', small_background_image => 's.png',
          count => 4, title => 'T',
          map { ("cycle_image$_" => "/c$_.png") } 1 .. 9 },
        v2_xml(' Template="CycleTile"', $cycle_children));

my %iconic = (small_icon_image => 'si.png', icon_image => 'i.png',
              wide_content1 => 'w1', wide_content2 => 'w2',
              wide_content3 => 'w3', count => 3, title => 'T',
              background_color => '#FF112233');

my $iconic_children = el(SmallIconImage => 'si.png')
    . el(IconImage => 'i.png') . el(WideContent1 => 'w1')
    . el(WideContent2 => 'w2') . el(WideContent3 => 'w3')
    . el(Count => 3) . el(Title => 'T')
    . el(BackgroundColor => '#FF112233');

send_ok('iconic tile with every field in MSDN order, Id before Template',
        { type => 'iconic', id => '/I.xaml', %iconic },
        v2_xml(' Id="/I.xaml" Template="IconicTile"', $iconic_children));

send_ok('iconic tile without Id',
        { type => 'iconic', %iconic },
        v2_xml(' Template="IconicTile"', $iconic_children));

send_ok('background_color in lower case is sent as given',
        { type => 'iconic', title => 'T', background_color => '#ff0a0b0c' },
        v2_xml(' Template="IconicTile"',
               el(Title => 'T') . el(BackgroundColor => '#ff0a0b0c')));

send_ok('an empty background_color sends an empty element',
        { type => 'iconic', title => 'T', background_color => '' },
        v2_xml(' Template="IconicTile"',
               el(Title => 'T') . el(BackgroundColor => '')));

# Action="Clear"

send_ok('clear list sends Action="Clear" elements in element order',
        { type => 'tile', clear => ['title', 'count'] },
        tile_xml('', cleared('Count') . cleared('Title')));

send_ok('cleared and set fields interleave in element order',
        { type => 'tile', background_image => '/b.png', back_title => 'BT',
          clear => ['back_content', 'count'] },
        tile_xml('', el(BackgroundImage => '/b.png') . cleared('Count')
                     . el(BackTitle => 'BT') . cleared('BackContent')));

send_ok('JSON null clears a tile property',
        '{"channel":"' . $CH . '","type":"tile","count":null,'
        . '"title":"T","back_title":null}',
        tile_xml('', cleared('Count') . el(Title => 'T')
                     . cleared('BackTitle')));

send_ok('clear on a flip template',
        { type => 'flip', title => 'T',
          clear => ['wide_back_content', 'small_background_image'] },
        v2_xml(' Template="FlipTile"', cleared('SmallBackgroundImage')
               . cleared('WideBackContent') . el(Title => 'T')));

send_ok('form body clear=count,back_title',
        sub {
            $t->http('POST', '/push',
                     headers => ['Content-Type'
                                 => 'application/x-www-form-urlencoded'],
                     body => 'channel=' . uri_escape($CH)
                             . '&type=tile&title=T'
                             . '&clear=count%2Cback_title');
        },
        tile_xml('', cleared('Count') . el(Title => 'T')
                     . cleared('BackTitle')));

send_ok('query string clear=count,back_title',
        sub {
            $t->http_get('/push?channel=' . uri_escape($CH)
                         . '&type=tile&title=T&clear=count,back_title');
        },
        tile_xml('', cleared('Count') . el(Title => 'T')
                     . cleared('BackTitle')));

# npm camelCase aliases

{
    my %snake = (%flip, id => '/F.xaml');
    my %camel = (backgroundImage => 'b.png', count => 3, title => 'T',
                 backBackgroundImage => 'bb.png', backTitle => 'BT',
                 backContent => 'BC', smallBackgroundImage => 's.png',
                 wideBackgroundImage => 'w.png',
                 wideBackBackgroundImage => 'wbb.png',
                 wideBackContent => 'wbc', id => '/F.xaml');

    my $xml = v2_xml(' Id="/F.xaml" Template="FlipTile"', $flip_children);

    send_ok('flip snake_case reference for the aliases',
            { type => 'flip', %snake }, $xml);
    send_ok('flip camelCase aliases give the same bytes',
            { type => 'flip', %camel }, $xml);

    delete $camel{smallBackgroundImage};
    send_ok('legacy smallbackgroundImage alias gives the same bytes',
            { type => 'flip', %camel, smallbackgroundImage => 's.png' },
            $xml);
}

send_ok('cycle camelCase aliases give the same bytes',
        { type => 'cycle', smallBackgroundImage => 's.png',
          count => 4, title => 'T', id => '/C.xaml',
          map { ("cycleImage$_" => "/c$_.png") } 1 .. 9 },
        v2_xml(' Id="/C.xaml" Template="CycleTile"', $cycle_children));

send_ok('iconic camelCase aliases give the same bytes',
        { type => 'iconic', smallIconImage => 'si.png',
          iconImage => 'i.png', wideContent1 => 'w1', wideContent2 => 'w2',
          wideContent3 => 'w3', count => 3, title => 'T',
          backgroundColor => '#FF112233' },
        v2_xml(' Template="IconicTile"', $iconic_children));

{
    my $id = '0f8fad5b-d9cb-469f-a165-70867728950e';

    my $a = send_ok('message_id reference for the alias',
                    { type => 'toast', text1 => 'Hi', message_id => $id },
                    toast_xml(el(Text1 => 'Hi')));
    my $b = send_ok('messageId alias gives the same message',
                    { type => 'toast', text1 => 'Hi', messageId => $id },
                    toast_xml(el(Text1 => 'Hi')));

    is($b->{hdr}{'x-messageid'}, $id, 'messageId alias sets X-MessageID');
    is($b->{hdr}{'x-messageid'}, $a->{hdr}{'x-messageid'},
       'messageId and message_id send the same X-MessageID');
}

# raw

send_ok('raw JSON payload is sent unchanged',
        { type => 'raw', payload => '{"a":1} <&>' },
        '{"a":1} <&>');

send_ok('raw JSON payload with UTF-8 is sent as UTF-8 bytes',
        { type => 'raw', payload => $utf8_text },
        encode_utf8($utf8_text));

send_ok('raw form payload is decoded and sent',
        sub {
            $t->http('POST', '/push',
                     headers => ['Content-Type'
                                 => 'application/x-www-form-urlencoded'],
                     body => 'channel=' . uri_escape($CH)
                             . '&type=raw&payload=a%26b%00c');
        },
        "a&b\x00c");

my $binary = join '', map { chr } 0 .. 255;

{
    my $req = send_ok('raw pass-through sends the request body unchanged',
        sub {
            $t->http('POST', "/raw?channel=$CH",
                     headers => ['Content-Type'
                                 => 'application/octet-stream'],
                     body => $binary);
        },
        $binary);

    is($req->{hdr}{'content-type'}, 'application/octet-stream',
       'raw pass-through keeps the request Content-Type');
}

{
    my $req = send_ok('raw with channel in the query string passes through',
        sub {
            $t->http('POST', "/push?type=raw&channel=$CH",
                     headers => ['Content-Type'
                                 => 'application/octet-stream'],
                     body => $binary);
        },
        $binary);

    is($req->{hdr}{'content-type'}, 'application/octet-stream',
       'query-string raw keeps the request Content-Type');
}

# payload size

{
    my $overhead = length toast_xml(el(Text1 => ''));

    send_ok('payload of exactly 1024 bytes is sent',
            { type => 'toast', text1 => 'x' x (1024 - $overhead) },
            toast_xml(el(Text1 => 'x' x (1024 - $overhead))));

    refused('payload of 1025 bytes is refused with 413',
            { type => 'toast', text1 => 'x' x (1025 - $overhead) },
            413, 'payload too large', 'payload');

    refused('payload counts escaped bytes',
            { type => 'toast', text1 => '&' x 200 },
            413, 'payload too large', 'payload');

    # the simulator itself refuses more than 1024 bytes with 400, as MPNS
    # did; what matters here is that the module sent it

    send_ok('mpns_max_payload_size 2k raises the limit',
            { type => 'toast', text1 => 'x' x (2000 - $overhead) },
            toast_xml(el(Text1 => 'x' x (2000 - $overhead))),
            uri => '/push2k', status => 400, errors_ok => 1);

    refused('mpns_max_payload_size 2k still refuses 2049 bytes',
            { type => 'toast', text1 => 'x' x (2049 - $overhead) },
            413, 'payload too large', 'payload', uri => '/push2k');

    refused('raw JSON payload over 1024 bytes is refused',
            { type => 'raw', payload => 'r' x 1025 },
            413, 'payload too large', 'payload');

    refused('raw pass-through body over 1024 bytes is refused',
            sub {
                $t->http('POST', "/raw?channel=$CH",
                         headers => ['Content-Type'
                                     => 'application/octet-stream'],
                         body => $binary x 4 . 'x');
            },
            413, 'payload too large', 'payload');
}

# refused: text

for my $bad (["\xff", 'a lone 0xff byte'],
             ["\xc3(", 'a truncated sequence'],
             ["\xc0\xaf", 'an overlong encoding'],
             ["\xed\xa0\x80", 'an encoded surrogate'])
{
    refused("invalid UTF-8 in text1 ($bad->[1]) is refused",
            '{"channel":"' . $CH . '","type":"toast","text1":"a'
            . $bad->[0] . 'b"}',
            400, 'invalid character', 'text1');
}

refused('a lone surrogate \ud800 escape is refused as invalid character',
        '{"channel":"' . $CH . '","type":"toast","text1":"a\ud800b"}',
        400, 'invalid character', 'text1');

refused('a high surrogate escape without its low half is refused',
        '{"channel":"' . $CH . '","type":"toast","text1":"a\ud83db"}',
        400, 'invalid character', 'text1');

refused('invalid UTF-8 in a query-string text1 is refused',
        sub {
            $t->http_get('/push?type=toast&channel=' . uri_escape($CH)
                         . '&text1=a%FFb');
        },
        400, 'invalid character', 'text1');

refused('invalid UTF-8 in a form-body param is refused',
        sub {
            $t->http('POST', '/push',
                     headers => ['Content-Type'
                                 => 'application/x-www-form-urlencoded'],
                     body => 'channel=' . uri_escape($CH)
                             . '&type=toast&text1=Hi&param=%2Fa%C3');
        },
        400, 'invalid character', 'param');

refused('XML-illegal control character \u0001 is refused',
        '{"channel":"' . $CH . '","type":"toast","text1":"a\u0001b"}',
        400, 'invalid character', 'text1');

refused('NUL \u0000 is refused',
        '{"channel":"' . $CH . '","type":"toast","text1":"a\u0000b"}',
        400, 'invalid character', 'text1');

refused('XML-illegal \uffff is refused',
        '{"channel":"' . $CH . '","type":"toast","text1":"a\uffffb"}',
        400, 'invalid character', 'text1');

refused('control character in a tile title is refused',
        '{"channel":"' . $CH . '","type":"tile","title":"a\u001fb"}',
        400, 'invalid character', 'title');

refused('control character in a tile id is refused',
        '{"channel":"' . $CH . '","type":"tile","title":"T",'
        . '"id":"/a\u0002"}',
        400, 'invalid character', 'id');

# refused: values

refused('count 100 is refused', { type => 'tile', count => 100 },
        400, 'invalid value', 'count');

refused('count -1 is refused', { type => 'tile', count => -1 },
        400, 'invalid value', 'count');

refused('count "x" is refused', { type => 'tile', count => 'x' },
        400, 'invalid value', 'count');

refused('count "5x" is refused', { type => 'tile', count => '5x' },
        400, 'invalid value', 'count');

# refused: background_color is "#AARRGGBB"

for my $bad ('red', '#FF1122', '#FF1122334', 'FF1122334', '#FF11223G',
             '#FF 11223', '0xFF112233')
{
    refused("background_color \"$bad\" is refused",
            { type => 'iconic', title => 'T', background_color => $bad },
            400, 'invalid value', 'background_color');
}

refused('background_color as a number is refused',
        '{"channel":"' . $CH . '","type":"iconic","title":"T",'
        . '"background_color":12345678}',
        400, 'invalid value', 'background_color');

# refused: fields and types

refused('text1 on a tile is refused',
        { type => 'tile', title => 'T', text1 => 'Hi' },
        400, 'field not allowed for this type', 'text1');

refused('count on a toast is refused',
        { type => 'toast', text1 => 'Hi', count => 1 },
        400, 'field not allowed for this type', 'count');

refused('wide_content1 on a flip tile is refused',
        { type => 'flip', title => 'T', wide_content1 => 'w' },
        400, 'field not allowed for this type', 'wide_content1');

refused('cycle_image1 on a WP7 tile is refused',
        { type => 'tile', title => 'T', cycle_image1 => '/c.png' },
        400, 'field not allowed for this type', 'cycle_image1');

refused('payload on a toast is refused',
        { type => 'toast', text1 => 'Hi', payload => 'x' },
        400, 'field not allowed for this type', 'payload');

refused('a field set, then cleared is refused as both set and cleared',
        '{"channel":"' . $CH . '","type":"tile","title":"T",'
        . '"clear":["title"]}',
        400, 'field both set and cleared', 'title');

refused('a field cleared, then set is refused as both set and cleared',
        '{"channel":"' . $CH . '","type":"tile","clear":["title"],'
        . '"title":"T"}',
        400, 'field both set and cleared', 'title');

refused('an unknown name in clear is refused',
        { type => 'tile', title => 'T', clear => ['bogus'] },
        400, 'invalid value', 'clear');

refused('clear on a toast is refused',
        { type => 'toast', text1 => 'Hi', clear => ['count'] },
        400, 'field not allowed for this type', 'clear');

refused('JSON null for a toast field is refused',
        '{"channel":"' . $CH . '","type":"toast","text1":null,'
        . '"text2":"x"}',
        400, 'field cannot be cleared', 'text1');

refused('an alias and its snake_case name together are a duplicate',
        { type => 'flip', title => 'T', smallBackgroundImage => 'a.png',
          small_background_image => 'a.png' },
        400, 'duplicate field', 'small_background_image');

refused('clearing a field that has no element is refused',
        { type => 'tile', title => 'T', clear => ['id'] },
        400, 'field cannot be cleared', 'id');

refused('sound and silent together are refused',
        { type => 'toast', text1 => 'Hi', sound => '/s.wav',
          silent => JSON::PP::true },
        400, 'sound and silent are exclusive', 'silent');

refused('toast without text is refused',
        { type => 'toast', param => '/P.xaml' },
        400, 'missing field', 'text1');

refused('tile with no property is refused',
        { type => 'tile', id => '/S.xaml' },
        400, 'empty notification', 'type');

###############################################################################

$t->done;
done_testing;

###############################################################################
