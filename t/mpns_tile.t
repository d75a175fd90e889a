#!/usr/bin/perl

# mpns_tile (ngx_http_mpns_tile_module, a .so of its own): PNG tile images
# at the phone's sizes from the query string and nginx.conf, their pixels
# (decoded here: no CPAN), the same bytes and ETag for the same tile, 304,
# Cache-Control, the 80 KB limit, the refused requests, the configuration
# errors, and a flip tile whose background_image is such a tile.

use strict;
use warnings;

use Test::More;
use Compress::Zlib qw(crc32 uncompress);
use File::Copy qw(copy);

use lib 't/lib';
use MpnsTest qw(http_conf uri_escape);

my $FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';

my $t = MpnsTest->new(tile => 1);

$t->sim_start;

copy($FONT, $t->testdir . '/font.ttf') or die "cannot copy $FONT: $!";

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        large_client_header_buffers 4 64k;

        location = /tile.png {
            mpns_tile;
        }

        location = /tile1k.png {
            mpns_tile;
            mpns_tile_max_size 1k;
        }

        location = /fixed.png {
            mpns_tile;
            mpns_tile_field size wide;
            mpns_tile_field count $arg_n;
            mpns_tile_field title $arg_t;
            mpns_tile_max_age 10m;
        }

        location = /expires.png {
            mpns_tile;
            expires 1d;
        }

        location = /short.png {
            mpns_tile;
            mpns_tile_max_text 8;
        }

        location = /font.png {
            mpns_tile;
            mpns_tile_font %%TESTDIR%%/font.ttf;
        }

        location = /push {
            mpns_send;
        }

        # docs/patterns.md: what a tile schedule polls, drawn from what
        # the application answers
        location = /tiles/inbox.png {
            auth_request /app/inbox-tile;
            auth_request_set $inbox_count $upstream_http_x_tile_count;
            auth_request_set $inbox_line1 $upstream_http_x_tile_line1;

            mpns_tile;
            mpns_tile_field count $inbox_count;
            mpns_tile_field line1 $inbox_line1;
            mpns_tile_max_age 5m;
        }

        location = /app/inbox-tile {
            internal;
            proxy_pass http://127.0.0.1:%%PORT_APP%%;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }
    }

    # the application
    map $http_x_original_uri $app_count {
        ~[?&]device=lumia-920(&|$)  4;
        ~[?&]device=banned(&|$)     forbidden;
        default                     0;
    }

    server {
        listen       127.0.0.1:%%PORT_APP%%;
        server_name  localhost;

        location = /app/inbox-tile {
            if ($app_count = forbidden) {
                return 403;
            }

            add_header X-Tile-Count $app_count;
            add_header X-Tile-Line1 "2 new messages";
            return 204;
        }
    }

EOF_CONF

$t->run;

my %SIZES = (wp7 => [173, 173], small => [159, 159], medium => [336, 336],
             wide => [691, 336]);

###############################################################################

# a PNG decoder for what libgd writes: 8-bit RGB or RGBA, or a palette of
# 1 to 8 bits with its alpha in tRNS; not interlaced

# png($bytes): { width, height, type, depth, chunks => [names], rows =>
# [one string of RGBA bytes a row] }, or an error string.
sub png {
    my ($d) = @_;

    return 'no PNG signature' if substr($d, 0, 8) ne "\x89PNG\r\n\x1a\n";

    my ($pos, $idat, %png) = (8, '');
    my ($plte, $trns) = ('', '');

    while ($pos < length $d) {
        return 'truncated chunk' if $pos + 12 > length $d;

        my ($len, $type) = unpack('Na4', substr($d, $pos, 8));
        my $data = substr($d, $pos + 8, $len);
        my $crc = unpack('N', substr($d, $pos + 8 + $len, 4) // '');

        return "bad CRC of $type" if !defined $crc
                                     || crc32($type . $data) != $crc;

        push @{$png{chunks}}, $type;

        if ($type eq 'IHDR') {
            @png{qw(width height depth type compress filter interlace)}
                = unpack('NNCCCCC', $data);
        }

        $idat .= $data if $type eq 'IDAT';
        $plte = $data if $type eq 'PLTE';
        $trns = $data if $type eq 'tRNS';
        $pos += 12 + $len;
    }

    my ($depth, $type) = ($png{depth} // 0, $png{type} // 0);

    return "unexpected PNG format $depth $type"
        if !($type == 3 && $depth =~ /^[1248]$/
             || $type =~ /^[26]$/ && $depth == 8)
           || $png{interlace};

    my $bits = $type == 3 ? $depth : $type == 6 ? 32 : 24;
    my $bpp = $bits < 8 ? 1 : $bits / 8;
    my $stride = ($png{width} * $bits + 7) >> 3;
    my $raw = uncompress($idat) // return 'bad IDAT';

    return 'IDAT of the wrong size'
        if length $raw != $png{height} * ($stride + 1);

    # the palette as RGBA
    my @pal = map { substr($plte, 3 * $_, 3)
                    . (length $trns > $_ ? substr($trns, $_, 1) : "\xff") }
                  0 .. length($plte) / 3 - 1;

    my @prev = (0) x $stride;

    for my $y (0 .. $png{height} - 1) {
        my ($filter, @cur) = unpack('C*', substr($raw, $y * ($stride + 1),
                                                 $stride + 1));

        for my $i (0 .. $stride - 1) {
            my $a = $i >= $bpp ? $cur[$i - $bpp] : 0;
            my $b = $prev[$i];
            my $c = $i >= $bpp ? $prev[$i - $bpp] : 0;

            my $p = $filter == 0 ? 0
                  : $filter == 1 ? $a
                  : $filter == 2 ? $b
                  : $filter == 3 ? ($a + $b) >> 1
                  : paeth($a, $b, $c);

            $cur[$i] = ($cur[$i] + $p) & 0xff;
        }

        @prev = @cur;

        my $row = pack('C*', @cur);

        if ($type == 3) {
            my @index = map {
                ($cur[$_ * $depth >> 3] >> (8 - $depth - $_ * $depth % 8))
                & ((1 << $depth) - 1)
            } 0 .. $png{width} - 1;
            return 'index out of the palette' if grep { $_ > $#pal } @index;
            $row = join('', @pal[@index]);

        } elsif ($type == 2) {
            $row = join('', map { "$_\xff" } unpack('(a3)*', $row));
        }

        push @{$png{rows}}, $row;
    }

    return \%png;
}

sub paeth {
    my ($a, $b, $c) = @_;

    my $p = $a + $b - $c;
    my ($pa, $pb, $pc) = (abs($p - $a), abs($p - $b), abs($p - $c));

    return $pa <= $pb && $pa <= $pc ? $a : $pb <= $pc ? $b : $c;
}

# pixel($png, $x, $y): "RRGGBBAA" in hex (AA ff for opaque).
sub pixel {
    my ($png, $x, $y) = @_;
    return unpack('H8', substr($png->{rows}[$y], 4 * $x, 4));
}

# painted($png, $x0, $y0, $x1, $y1, $bg): how many pixels of the box
# (inclusive) are not $bg.
sub painted {
    my ($png, $x0, $y0, $x1, $y1, $bg) = @_;

    my $n = 0;

    for my $y ($y0 .. $y1) {
        for my $x ($x0 .. $x1) {
            $n++ if pixel($png, $x, $y) ne $bg;
        }
    }

    return $n;
}

sub tile {
    my ($args, %opts) = @_;
    return $t->http_get(($opts{uri} // '/tile.png') . "?$args", %opts);
}

# tile_ok($name, $args, %opts): a subtest: 200, image/png, a PNG that
# decodes; returns the answer with the decoded image in {png}.
sub tile_ok {
    my ($name, $args, %opts) = @_;

    my $r;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        my $mark = $t->log_mark;

        $r = tile($args, %opts);
        is($r->{status}, 200, 'answer 200') or diag($r->{raw});
        is($r->{headers}{'content-type'}, 'image/png', 'image/png');
        is($r->{headers}{'content-length'}, length $r->{body},
           'Content-Length');

        $r->{png} = png($r->{body});
        ok(ref $r->{png}, 'a PNG that decodes') or diag($r->{png});

        is(join("\n", $t->log_since('error', $mark)), '', 'no [error] lines');
    };

    return $r;
}

###############################################################################

# the sizes

for my $size (sort keys %SIZES) {
    my ($w, $h) = @{$SIZES{$size}};

    my $r = tile_ok("$size is ${w}x$h",
                    "size=$size&background=%231BA1E2&title=Weather&count=7"
                    . '&line1=Sunny&line2=23%C2%B0&line3=Wind');

    my $png = ref $r->{png} ? $r->{png} : { width => 0, height => 0 };

    is(substr($r->{body}, 0, 8), "\x89PNG\r\n\x1a\n", "$size: PNG signature");
    is("$png->{width}x$png->{height}", "${w}x$h", "$size: IHDR size");
    is(join(' ', unpack('x16 NN', $r->{body})), "$w $h",
       "$size: IHDR read from the bytes");
    is($png->{type}, 3, "$size: a palette image");
    is(join(',', @{$png->{chunks} // []}) =~ s/(IDAT,)+/IDAT,/r,
       'IHDR,PLTE,pHYs,IDAT,IEND', "$size: no time, text or tRNS chunks");
    ok(length $r->{body} < 80 * 1024, "$size: under 80 KB")
        or diag(length $r->{body});
    like($r->{headers}{etag}, qr{^W/"[0-9a-f]{32}"$}, "$size: a weak ETag");
    is($r->{headers}{'cache-control'}, 'max-age=3600',
       "$size: Cache-Control by default");

    next if !$png->{rows};

    my $m = int($h / 28);

    is(pixel($png, 0, 0), '1ba1e2ff', "$size: background at the top left");
    is(pixel($png, $w - 1, $h - 1), '1ba1e2ff',
       "$size: background at the bottom right");
    ok(painted($png, int($w / 2), 0, $w - 1, int($h / 4), '1ba1e2ff'),
       "$size: the count at the top right");
    ok(painted($png, 0, $h - int($h / 6), int($w / 3), $h - 1, '1ba1e2ff'),
       "$size: the title at the bottom left");
    is(painted($png, 0, 0, $w - 1, $m - 3, '1ba1e2ff')
       + painted($png, 0, 0, $m - 3, $h - 1, '1ba1e2ff')
       + painted($png, $w - $m + 2, 0, $w - 1, $h - 1, '1ba1e2ff')
       + painted($png, 0, $h - $m + 2, $w - 1, $h - 1, '1ba1e2ff'), 0,
       "$size: nothing drawn in the margins");
}

{
    my $r = tile_ok('no size is medium', 'title=T');
    is(join('x', unpack('x16 NN', $r->{body})), '336x336', '336x336');
    is($r->{body}, tile('size=medium&title=T')->{body},
       'the same bytes as size=medium');
}

###############################################################################

# what is drawn

{
    my $r = tile_ok('no background is transparent', 'size=small&title=T');
    my $png = $r->{png};

    ok((grep { $_ eq 'tRNS' } @{$png->{chunks}}), 'alpha in tRNS');
    is(pixel($png, 0, 0), '00000000', 'a transparent pixel');
    ok((grep { pixel($png, $_, $png->{height} - 9) =~ /^ffffff(?!00)/ }
             0 .. 40), 'white text in the title row');

    $r = tile_ok('#AARRGGBB: the alpha is kept', 'size=small&background=80102030');
    like(pixel($r->{png}, 0, 0), qr/^102030(7f|80|81)$/,
         'the colour and about half the alpha');

    $r = tile_ok('foreground colour',
                 'size=small&background=%23000000&foreground=%23FF8000'
                 . '&line1=HHHH');
    my %seen = map { pixel($r->{png}, $_->[0], $_->[1]) => 1 }
               map { my $y = $_; map { [$_, $y] } 0 .. 158 } 5 .. 30;
    ok($seen{'ff8000ff'}, 'pixels of the foreground colour');
    is(scalar(grep { !/^(..)(..)00ff$/ || hex($1) < hex($2) } keys %seen), 0,
       'only black, orange and what is between');
}

{
    my $r = tile_ok('nothing but a background', 'size=wide&background=%23102030');
    is($r->{png}{depth}, 1, 'a 1-bit palette');
    is(painted($r->{png}, 0, 0, 690, 335, '102030ff'), 0, 'every pixel');
}

{
    my $a = tile('size=small&background=%23000000');
    my $b = tile('size=small&background=%23000000&count=0');
    my $c = tile('size=small&background=%23000000&count=1');

    is($b->{body}, $a->{body}, 'count=0 draws no count');
    isnt($c->{body}, $a->{body}, 'count=1 draws one');
}

{
    my $r = tile_ok('a line too long for the tile ends in an ellipsis',
                    'size=medium&background=%23000000&line1='
                    . 'W' x 60);
    my $png = $r->{png};

    is(painted($png, 336 - 11, 0, 335, 60, '000000ff'), 0,
       'nothing drawn past the right margin');
    ok(painted($png, 336 - 60, 0, 336 - 13, 60, '000000ff'),
       'text up to it');

    my $r2 = tile('size=medium&background=%23000000&line1=' . 'W' x 80);
    is($r2->{body}, $r->{body}, 'longer text: the same beginning');
}

{
    my $r = tile_ok('a line beside the count ends before it',
                    'size=medium&background=%23000000&count=99&line1='
                    . 'W' x 60);
    my $count = png(tile('size=medium&background=%23000000&count=99')->{body});

    # the first column the count paints; line 1 ends a margin before it
    my ($first) = grep { painted($count, $_, 0, $_, 80, '000000ff') } 0 .. 335;
    is(painted($r->{png}, $first - 11, 0, $first - 1, 50, '000000ff'), 0,
       'a margin between line 1 and the count');
}

{
    # gd decodes HTML entities: the module keeps "&" literal
    my $a = tile('size=small&title=A%26amp%3B');
    my $b = tile('size=small&title=A%26');

    isnt($a->{body}, $b->{body}, '"&amp;" is drawn as it is, not as "&"');

    my $c = tile('size=small&title=A%26%2338%3B');
    isnt($c->{body}, $b->{body}, '"&#38;" too');
}

###############################################################################

# the same tile, the same bytes; ETag and 304

{
    my $args = 'size=wide&background=%23A0522D&count=42&title=Caf%C3%A9'
               . '&line1=one&line2=two&line3=three';
    my $r1 = tile($args);
    my $r2 = tile($args);

    is($r2->{body}, $r1->{body}, 'the same request, the same bytes');
    is($r2->{headers}{etag}, $r1->{headers}{etag}, 'and the same ETag');

    my $r3 = tile('line3=three&line2=two&line1=one&title=Caf%c3%a9'
                  . '&count=42&background=a0522d&size=wide&other=1');
    is($r3->{body}, $r1->{body},
       'the same fields in another order and spelling, the same bytes');
    is($r3->{headers}{etag}, $r1->{headers}{etag}, 'and the same ETag');

    my $r4 = tile($args =~ s/three/thr+ee/r);
    isnt($r4->{headers}{etag}, $r1->{headers}{etag},
         'another text, another ETag');
    isnt($r4->{body}, $r1->{body}, 'and other bytes');

    my %etags;
    for my $q ('size=small&title=ab', 'size=small&title=a&line1=b',
               'size=small&line1=ab', 'size=wp7&title=ab',
               'size=small&title=ab&count=1', 'size=small&title=ab&'
               . 'foreground=%23fffffe')
    {
        $etags{tile($q)->{headers}{etag} // 'none'}++;
    }
    is(scalar keys %etags, 6, 'each field moves the ETag');

    my $etag = $r1->{headers}{etag};

    my $mark = $t->log_mark;
    tile($args);
    is(scalar $t->log_since(qr/mpns tile .* rendered/, $mark), 1,
       'a request without If-None-Match is rendered');

    my $opaque = $etag =~ s{^W/}{}r;

    for my $inm ($etag, $opaque, qq{"x", $etag}, qq{"a,b",$opaque}, '*') {
        subtest "If-None-Match: $inm" => sub {
            my $mark = $t->log_mark;
            my $r = tile($args, headers => ['If-None-Match' => $inm]);

            is($r->{status}, 304, 'answer 304') or diag($r->{raw});
            is($r->{body}, '', 'no body');
            is($r->{headers}{etag}, $etag, 'the ETag');
            is($r->{headers}{'cache-control'}, 'max-age=3600',
               'Cache-Control');
            is(scalar $t->log_since(qr/mpns tile .* rendered/, $mark), 0,
               'nothing rendered');
        };
    }

    for my $inm ('"x"', substr($etag, 0, -2) . '"', 'W/"x", "y"',
                 substr($opaque, 1, -1), "W/W/$opaque")
    {
        is(tile($args, headers => ['If-None-Match' => $inm])->{status}, 200,
           "If-None-Match: $inm is 200");
    }

    my $head = $t->http('HEAD', "/tile.png?$args");
    is($head->{status}, 200, 'HEAD: 200');
    is($head->{headers}{'content-length'}, length $r1->{body},
       'HEAD: the length of the tile');
    is($head->{body}, '', 'HEAD: no body');
    is($head->{headers}{etag}, $etag, 'HEAD: the ETag');
}

{
    my $r = tile('size=wide&title=Hi', uri => '/expires.png');
    is($r->{status}, 200, 'with expires: 200');
    is(scalar(grep { lc $_->[0] eq 'cache-control' } @{$r->{header_list}}),
       1, 'with expires: one Cache-Control');
    is($r->{headers}{'cache-control'}, 'max-age=86400',
       'with expires: the one of expires');

    my $tile = tile('size=wide&title=Hi');
    is($r->{headers}{etag}, $tile->{headers}{etag},
       'with expires: the same ETag');
}

###############################################################################

# values from nginx.conf

{
    my $ref = tile('size=wide&count=5&title=Hi');
    my $r = tile('size=small&n=5&t=Hi', uri => '/fixed.png');

    is($r->{status}, 200, 'mpns_tile_field: 200');
    is(join('x', unpack('x16 NN', $r->{body})), '691x336',
       'mpns_tile_field size wins over the query');
    is($r->{headers}{etag}, $ref->{headers}{etag},
       'values from variables: the ETag of the same tile');
    is($r->{body}, $ref->{body}, 'and its bytes');
    is($r->{headers}{'cache-control'}, 'max-age=600', 'mpns_tile_max_age');

    $r = tile('count=5&title=Hi', uri => '/fixed.png');
    is($r->{headers}{etag}, $ref->{headers}{etag},
       'an empty value leaves the field to the query');
}

{
    my $ref = tile('size=small&title=Hi');
    my $r = tile('size=small&title=Hi', uri => '/font.png');

    is($r->{body}, $ref->{body}, 'a copy of the font: the same bytes');
    isnt($r->{headers}{etag}, $ref->{headers}{etag},
         'another font file: another ETag');

    my $font = $t->testdir . '/font.ttf';
    utime(time, (stat $font)[9] - 100, $font) or die "utime $font: $!";

    $t->restart;

    my $r2 = tile('size=small&title=Hi', uri => '/font.png');
    is($r2->{body}, $r->{body}, 'the font file changed: the same bytes');
    isnt($r2->{headers}{etag}, $r->{headers}{etag}, 'but another ETag');
}

{
    my $ref = tile('count=4&line1=2%20new%20messages');
    my $r = $t->http_get('/tiles/inbox.png?device=lumia-920');

    is($r->{status}, 200, 'a tile schedule\'s URL: 200');
    is($r->{headers}{etag}, $ref->{headers}{etag},
       'drawn from what the application answered');
    is($r->{body}, $ref->{body}, 'the same bytes');
    is($r->{headers}{'cache-control'}, 'max-age=300', 'its max-age');

    $r = $t->http_get('/tiles/inbox.png?device=other');
    is($r->{headers}{etag}, tile('count=0&line1=2+new+messages')
                            ->{headers}{etag}, 'another device, its tile');

    is($t->http_get('/tiles/inbox.png?device=banned')->{status}, 403,
       'the application refuses: 403');
}

###############################################################################

# the size limit

{
    # what fills a tile most: every text as long as allowed, of many
    # different glyphs, a count, text and background with alpha
    my $text = join('', map { chr(33 + ($_ * 37) % 94) } 1 .. 256);
    my $q = join('&', 'size=wide', 'background=%2380FF0000',
                 'foreground=%23C000FF00', 'count=88',
                 map { "$_=" . uri_escape($text) }
                     qw(title line1 line2 line3));

    my $r = tile_ok('the fullest tile', $q);
    ok(length $r->{body} < 80 * 1024, 'is under 80 KB')
        or diag(length $r->{body});
    note('the fullest wide tile: ' . length($r->{body}) . ' bytes');

    my $mark = $t->log_mark;
    $r = tile('size=medium&title=Over', uri => '/tile1k.png');
    is($r->{status}, 500, 'over mpns_tile_max_size: 500');

    my $len = length tile('size=medium&title=Over')->{body};
    ok((grep { /\[error\].* mpns tile of $len bytes is over mpns_tile_max_size 1024,/ }
            $t->log_since(undef, $mark)),
       'the error log says so');
}

###############################################################################

# refused

my %refused = (
    'an unknown size' => ['size=huge', 'invalid value', 'size'],
    'a size in capitals' => ['size=WIDE', 'invalid value', 'size'],
    'a colour name' => ['background=red', 'invalid value', 'background'],
    'five hex digits' => ['background=%2312345', 'invalid value',
                          'background'],
    'seven hex digits' => ['background=1234567', 'invalid value',
                           'background'],
    'not hex' => ['background=%23GG0000', 'invalid value', 'background'],
    'two #' => ['background=%23%23123456', 'invalid value', 'background'],
    'a bad foreground' => ['foreground=%23fff', 'invalid value',
                           'foreground'],
    'count 1000' => ['count=1000', 'invalid value', 'count'],
    'count 100' => ['count=100', 'invalid value', 'count'],
    'a negative count' => ['count=-1', 'invalid value', 'count'],
    'a count that is not a number' => ['count=1.5', 'invalid value',
                                       'count'],
    'a 10 KB title' => ['title=' . 'A' x 10240, 'value is too long',
                        'title'],
    'a 257 byte line' => ['line3=' . 'A' x 257, 'value is too long',
                          'line3'],
    'invalid UTF-8' => ['line1=a%FFb', 'invalid character', 'line1'],
    'a truncated UTF-8 sequence' => ['line2=a%C3', 'invalid character',
                                     'line2'],
    'a lead byte past U+10FFFF' => ['line1=%F8%90%80%80', 'invalid character',
                                    'line1'],
    'a surrogate' => ['line1=%ED%A0%80', 'invalid character', 'line1'],
    'a newline' => ['title=a%0Ab', 'invalid character', 'title'],
    'a NUL' => ['title=a%00b', 'invalid character', 'title'],
    'a C1 control' => ['title=a%C2%85b', 'invalid character', 'title'],
    'a field twice' => ['size=wide&size=small', 'duplicate field', 'size'],
);

for my $name (sort keys %refused) {
    my ($args, $error, $field) = @{$refused{$name}};
    $t->refused("$name is refused", 400, $error, $field,
                sub { tile($args) });
}

$t->refused('the first mistake in field order is reported', 400,
            'invalid value', 'size',
            sub { tile('count=1000&background=x&size=x') });

$t->refused('a value from nginx.conf is checked too', 400, 'invalid value',
            'count', sub { tile('n=500', uri => '/fixed.png') });

$t->refused('mpns_tile_max_text', 400, 'value is too long', 'line1',
            sub { tile('line1=123456789', uri => '/short.png') });

is(tile('line1=12345678', uri => '/short.png')->{status}, 200,
   'mpns_tile_max_text: as long as allowed is 200');
is(tile('title=' . 'A' x 256)->{status}, 200, '256 bytes by default: 200');
is(tile('count=99&line1=%E2%82%AC%F0%9F%98%80')->{status}, 200,
   'count 99 and multi-byte UTF-8: 200');

$t->refused('POST', 405, 'method not allowed', 'method',
            sub { $t->post_body('/tile.png?size=wide', 'text/plain', 'x') });

###############################################################################

# a flip tile whose background image is a tile of the module

$t->delivered('a flip tile points at tiles of the module', sub {
    my $base = 'http://127.0.0.1:' . $t->port('http') . '/tile.png';

    $t->post_json('/push', {
        channel => $t->sim_url('/throttledthirdparty/01.00/AAF'),
        type => 'flip', title => 'Weather', count => 3,
        background_image => "$base?size=medium&line1=Sunny&line2=23%C2%B0",
        wide_background_image => "$base?size=wide&line1=Sunny&line2=23%C2%B0",
    });
}, sub {
    my ($req) = @_;

    my %url;
    while ($req->{body} =~ m{<wp:(\w*BackgroundImage)>([^<]*)<}g) {
        my ($el, $url) = ($1, $2);
        $url{$el} = $url =~ s/&amp;/&/gr;
    }

    for my $el (qw(BackgroundImage WideBackgroundImage)) {
        my ($path) = ($url{$el} // '') =~ m{^http://[^/]+(/.*)$};
        my $r = $t->http_get($path // '/none');

        is($r->{status}, 200, "$el: the phone gets 200");
        is(join('x', unpack('x16 NN', $r->{body})),
           $el eq 'BackgroundImage' ? '336x336' : '691x336',
           "$el: of its size");
    }
});

###############################################################################

# the sender does not link libgd; the tile module alone

{
    my ($sender, $tile) = $t->modules;

    unlike(scalar `ldd $sender`, qr/libgd/, 'the sender does not link libgd');
    like(scalar `ldd $tile`, qr/libgd\.so/, 'the tile module does');
}

my $only = MpnsTest->new(tile => 'only');

my ($rc, $out) = $only->nginx_test(http_conf(<<'EOF_CONF', defaults => 1));

    server {
        location = /push {
            mpns_send;
        }
    }

EOF_CONF

like($out, qr/unknown directive "mpns_send"/,
     'the tile module alone: no sender');

$only->write_conf(http_conf(<<'EOF_CONF', defaults => 1));

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /tile.png {
            mpns_tile;
        }
    }

EOF_CONF

$only->run;

is(join('x', unpack('x16 NN', $only->http_get('/tile.png?size=wp7')->{body})),
   '173x173', 'the tile module alone: a tile');

$only->done;

###############################################################################

# configuration errors

my %conf_errors = (
    'a missing font' => [
        'mpns_tile; mpns_tile_font /nonexistent/font.ttf;',
        qr{\[emerg\] stat\(\) "/nonexistent/font\.ttf" failed}],
    'a file that is not a font' => [
        'mpns_tile; mpns_tile_font %%TESTDIR%%/nginx.conf;',
        qr{\[emerg\] mpns_tile_font ".*/nginx\.conf" cannot be used: }],
    'an unknown field' => [
        'mpns_tile; mpns_tile_field colour red;',
        qr{\[emerg\] unknown mpns tile field "colour"}],
    'a field twice' => [
        'mpns_tile; mpns_tile_field size wide; mpns_tile_field size small;',
        qr{\[emerg\] duplicate mpns tile field "size"}],
    'mpns_tile twice' => [
        'mpns_tile; mpns_tile;',
        qr{\[emerg\] "mpns_tile" directive is duplicate}],
    'mpns_tile with a parameter' => [
        'mpns_tile wide;',
        qr{\[emerg\] invalid number of arguments in "mpns_tile"}],
    'a bad mpns_tile_max_size' => [
        'mpns_tile; mpns_tile_max_size big;',
        qr{\[emerg\] "mpns_tile_max_size" directive invalid value}],
);

for my $name (sort keys %conf_errors) {
    my ($directives, $re) = @{$conf_errors{$name}};

    my ($rc, $out) = $t->nginx_test(http_conf(<<"EOF_CONF"));

    server {
        location = /tile.png {
            $directives
        }
    }

EOF_CONF

    isnt($rc, 0, "$name: nginx -t fails");
    like($out, $re, "$name: the message");
}

($rc, $out) = $t->nginx_test(http_conf(<<'EOF_CONF'));

    mpns_tile_font /nonexistent/font.ttf;

    server {
        location = /push {
            mpns_send;
        }
    }

EOF_CONF

is($rc, 0, 'a font that is not there is fine where no location draws')
    or diag($out);

$t->done;

done_testing;
