#!/usr/bin/perl

# The channel registry (docs/registry.md): mpns_registry_zone and
# mpns_registry configuration, the HTTP API (register, de-duplicate,
# replace a device's channel, delete, list with filters and pages), the
# state file across stop/start and reloads, several workers, a full zone
# and a state directory the workers cannot write.

use strict;
use warnings;

use Test::More;

use File::Temp ();
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep);

use lib 't/lib';
use MpnsTest qw(http_conf uri_escape slurp);

my $t = MpnsTest->new;
my $dir = $t->testdir;

mkdir "$dir/state" or die "mkdir: $!";

my $state = "$dir/state/reg.ndjson";

###############################################################################

# the configuration: zone "reg" (size $size, state file, a snapshot a
# second after a change) at /channels, zone "small" (no state) at /small,
# a send location for comparison

sub conf {
    my (%o) = @_;

    my $size = $o{size} // '1m';
    my $workers = $o{workers} // 1;

    my $conf = http_conf(<<"EOF");

    mpns_allowed_hosts ^127\\.0\\.0\\.1\$;

    mpns_registry_zone zone=reg:$size state=state/reg.ndjson;
    mpns_registry_zone zone=small:64k;
    mpns_journal snapshot=1s;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /channels {
            mpns_registry reg;
        }

        location = /tiny {
            mpns_registry reg;
            mpns_max_body_size 100;
        }

        location = /small {
            mpns_registry small;
        }

        location = /push {
            mpns_send;
        }
    }

EOF

    $conf =~ s/^(%%TEST_GLOBALS%%)$/$1\nworker_processes $workers;/m;

    return $conf;
}

sub ch { 'http://127.0.0.1/ch/' . $_[0] }

sub reg {
    my ($data, %o) = @_;
    my $uri = delete $o{uri} // '/channels';
    return $t->post_json($uri, $data, %o);
}

sub del { $t->http('DELETE', "/channels?$_[0]") }

sub list {
    my ($q, $uri) = @_;
    return $t->http_get(($uri // '/channels') . (defined $q ? "?$q" : ''));
}

sub total { list('limit=1', $_[0])->{json}{total} }

# every channel, page by page; dies on a bad page
sub all_channels {
    my ($q, $limit) = @_;

    my (@all, $after);
    my $pages = 0;

    while (1) {
        my $args = join '&', grep { defined }
            $q, "limit=$limit", defined $after ? 'after=' . uri_escape($after)
                                               : undef;
        my $r = list($args);
        die "page: $r->{raw}" if ($r->{status} // 0) != 200;

        push @all, map { $_->{channel} } @{$r->{json}{channels}};
        $pages++;

        $after = $r->{json}{next};
        last if !defined $after;
        die "too many pages" if $pages > 1000;
    }

    return (\@all, $pages);
}

# a refused request: status, {"error", "field"} and the info log line
sub refused {
    my ($name, $status, $error, $field, $send) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        my $mark = length $t->error_log;
        my $r = $send->();

        is($r->{status}, $status, "answer $status") or diag($r->{raw});
        like($r->{headers}{'content-type'} // '', qr{^application/json},
             'application/json');
        is_deeply($r->{json}, { error => $error, field => $field },
                  qq{{"error":"$error","field":"$field"}})
            or diag($r->{body});

        my $line = qq{mpns request refused: $error, field "$field"};
        ok((grep { index($_, $line) >= 0 } $t->log_since('info', $mark)),
           'info log line');
    };
}

###############################################################################

# configuration mistakes, each refused by "nginx -t" with its [emerg]

sub conf_error {
    my ($http, $location, $text, $name) = @_;

    my ($rc, $out) = $t->nginx_test(http_conf(<<"EOF"));

    $http

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /x {
            $location
        }
    }

EOF

    my ($msg) = $out =~ /^nginx: \[emerg\] (.*?)(?: in \S+\.conf:\d+)?$/m;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    subtest $name => sub {
        if (defined $text) {
            isnt($rc, 0, 'nginx -t fails');
            is($msg, $text, 'emerg text') or diag($out);
        } else {
            is($rc, 0, 'nginx -t passes') or diag($out);
        }
    };
}

my $z = 'mpns_registry_zone';

conf_error("$z zone=r;", '', 'invalid zone size "zone=r"',
           'zone without a size');
conf_error("$z zone=r:lots;", '', 'invalid zone size "zone=r:lots"',
           'zone with a bad size');
conf_error("$z zone=r:16k;", '', 'zone "zone=r:16k" is too small',
           'zone too small');
conf_error("$z zone=r:1m bogus=1;", '', 'invalid parameter "bogus=1"',
           'unknown parameter');
conf_error("$z state=x;", '', '"mpns_registry_zone" must have "zone" '
           . 'parameter', 'no zone parameter');
conf_error("$z zone=r:1m; $z zone=r:1m;", '', 'duplicate zone "r"',
           'the same zone twice');
conf_error("$z zone=r:1m state=$dir/none/r.state;", '',
           qq{state directory "$dir/none" does not exist},
           'state directory missing');
conf_error("$z zone=r:1m;", 'mpns_registry nope;',
           'unknown mpns_registry_zone "nope"', 'undeclared zone');
conf_error("$z zone=r:1m;", 'mpns_registry r; mpns_registry r;',
           '"mpns_registry" directive is duplicate', 'mpns_registry twice');
conf_error("$z zone=r:1m;", 'mpns_send; mpns_registry r;',
           '"mpns_registry" directive is duplicate', 'after mpns_send');
conf_error('', 'mpns_registry r;', 'unknown mpns_registry_zone "r"',
           'no zone at all');
conf_error("$z zone=r:1m state=state/r.state;", 'mpns_registry r;', undef,
           'a valid configuration');
conf_error("$z zone=r:64k;", 'mpns_registry r;', undef,
           'declared after use is fine');

###############################################################################

$t->write_conf(conf())->run;
$t->log_mark;

# registering

my $r = reg({ channel => ch('a'), user => 'alice', device => 'phone-a',
              tags => ['news', 'sport'], os => 'wp8' });
is($r->{status}, 201, 'new channel: 201') or diag($r->{raw});
is_deeply([ sort keys %{$r->{json}} ],
          [ qw(channel created device os tags user) ], 'entry keys');
is($r->{json}{channel}, ch('a'), 'entry channel');
is_deeply($r->{json}{tags}, ['news', 'sport'], 'entry tags');
like($r->{json}{created}, qr/^\d+$/, 'created is unix seconds');
ok(abs($r->{json}{created} - time) < 60, 'created is now');

my $created = $r->{json}{created};

sleep 1.1;

$r = reg({ channel => ch('a'), user => 'alice', device => 'phone-a',
           tags => ['news'], os => 'wp8' });
is($r->{status}, 200, 'same channel again: 200') or diag($r->{raw});
is_deeply($r->{json}{tags}, ['news'], 'metadata replaced');
is($r->{json}{created}, $created, 'created kept');
ok(!exists $r->{json}{replaced}, 'nothing replaced');
is(total(), 1, 'de-duplicated: one entry');

# a device keeps its newest channel

$r = reg({ channel => ch('a2'), user => 'alice', device => 'phone-a' });
is($r->{status}, 201, 'device, new channel: 201');
is($r->{json}{replaced}, ch('a'), 'reports the replaced channel');
is(total(), 1, 'still one entry');
is(del('channel=' . uri_escape(ch('a')))->{status}, 404,
   'the old channel is gone');

# a user without a device too; a device's entry is not the user's

reg({ channel => ch('u1'), user => 'bob' });
$r = reg({ channel => ch('u2'), user => 'bob' });
is($r->{json}{replaced}, ch('u1'), 'user without device: replaced');
$r = reg({ channel => ch('u3'), user => 'bob', device => 'bob-phone' });
is($r->{status}, 201, 'user with a device: 201');
ok(!exists $r->{json}{replaced}, 'does not replace the user\'s channel');
$r = reg({ channel => ch('u4'), device => 'bob' });
ok(!exists $r->{json}{replaced}, 'device "bob" is not user "bob"');
$r = reg({ channel => ch('u5'), user => '', device => '', os => '' });
is_deeply([ @{$r->{json}}{qw(user device os)} ], [ undef, undef, undef ],
          'empty strings are not given');

is(total(), 5, 'five entries');

is(join(' ', sort map { $_->{channel} =~ m{/ch/(\w+)$} }
                  @{list()->{json}{channels}}),
   'a2 u2 u3 u4 u5', 'listing');

# channels are checked as sends check them

refused('host not allowed', 403, 'channel host is not allowed', 'channel',
        sub { reg({ channel => 'http://example.com/x' }) });
refused('the same from a send', 403, 'channel host is not allowed',
        'channel', sub { $t->push_toast('http://example.com/x') });
is(reg({ channel => 'https://127.0.0.1/unthrottledthirdparty/x' })
   ->{status}, 201, 'an https channel');
is(del('channel=' . uri_escape('https://127.0.0.1/unthrottledthirdparty/x'))
   ->{status}, 200, 'and away again');
refused('not http', 400, 'channel is not an http or https url', 'channel',
        sub { reg({ channel => 'ftp://127.0.0.1/x' }) });
refused('too long', 400, 'channel is too long', 'channel',
        sub { reg({ channel => ch('x' x 1020) }) });
refused('space in channel', 400, 'invalid character', 'channel',
        sub { reg({ channel => ch('a b') }) });
refused('no channel', 400, 'missing field', 'channel',
        sub { reg({ user => 'x' }) });
refused('empty channel', 400, 'missing field', 'channel',
        sub { reg({ channel => '' }) });

# fields

refused('unknown field', 400, 'unknown field', 'color',
        sub { reg({ channel => ch('f'), color => 'red' }) });
refused('created is not for clients', 400, 'unknown field', 'created',
        sub { reg({ channel => ch('f'), created => 1 }) });
refused('user a number', 400, 'invalid value', 'user',
        sub { reg('{"channel":"' . ch('f') . '","user":5}') });
refused('channel an array', 400, 'invalid value', 'channel',
        sub { reg({ channel => [ch('f')] }) });
refused('tags a string', 400, 'invalid value', 'tags',
        sub { reg({ channel => ch('f'), tags => 'news' }) });
refused('tags of numbers', 400, 'invalid value', 'tags',
        sub { reg('{"channel":"' . ch('f') . '","tags":[1]}') });
refused('control character', 400, 'invalid character', 'user',
        sub { reg('{"channel":"' . ch('f') . '","user":"a\u0001b"}') });
refused('DEL character', 400, 'invalid character', 'os',
        sub { reg({ channel => ch('f'), os => "wp\x7f" }) });
refused('control character in a tag', 400, 'invalid character', 'tags',
        sub { reg({ channel => ch('f'), tags => ["a\tb"] }) });

# invalid UTF-8 would go out raw, in answers, lists and the state file

for my $bad (['user', "\xff", 'a lone 0xff byte'],
             ['device', "\xc0\xaf", 'an overlong form'],
             ['os', "\xed\xa0\x80", 'an encoded surrogate'],
             ['user', "\xf4\x90\x80\x80", 'above U+10FFFF'])
{
    my ($field, $bytes, $what) = @$bad;

    refused("invalid UTF-8 in $field ($what)", 400, 'invalid character',
            $field, sub {
        reg('{"channel":"' . ch('f') . qq|","$field":"a${bytes}b"}|);
    });
}

refused('invalid UTF-8 in a tag (a truncated sequence)', 400,
        'invalid character', 'tags',
        sub { reg('{"channel":"' . ch('f') . qq|","tags":["ok","a\xc3"]}|) });

{
    my $r = reg('{"channel":"' . ch('utf8') . qq|","user":"Zo\xc3\xab",|
                . qq|"tags":["\xe6\x97\xa5\xf0\x9f\x93\xb1"]}|);
    is($r->{status}, 201, 'UTF-8 names: registered') or diag($r->{raw});
    is_deeply([ $r->{json}{user}, $r->{json}{tags} ],
              [ "Zo\x{eb}", ["\x{65e5}\x{1f4f1}"] ], 'UTF-8 names: echoed');
    is(del('channel=' . uri_escape(ch('utf8')))->{status}, 200,
       'UTF-8 names: deleted');
}

refused('user too long', 400, 'value too long', 'user',
        sub { reg({ channel => ch('f'), user => 'u' x 256 }) });
refused('device too long', 400, 'value too long', 'device',
        sub { reg({ channel => ch('f'), device => 'd' x 256 }) });
refused('tag too long', 400, 'value too long', 'tags',
        sub { reg({ channel => ch('f'), tags => ['t' x 65] }) });
refused('too many tags', 400, 'too many tags', 'tags',
        sub { reg({ channel => ch('f'), tags => [ map { "t$_" } 1 .. 17 ] }) });
refused('duplicate key', 400, 'duplicate field', 'user',
        sub { reg('{"channel":"' . ch('f') . '","user":"a","user":"b"}') });
refused('invalid json', 400, 'invalid json', 'body',
        sub { reg('{"channel":') });
refused('not json', 415, 'unsupported content type', 'body',
        sub { $t->post_body('/channels', 'text/plain', 'channel=x') });
refused('body too large', 413, 'request body too large', 'body',
        sub { reg({ channel => ch('f' x 200) }, uri => '/tiny') });
refused('chunked body too large', 413, 'request body too large', 'body',
        sub { $t->http('POST', '/tiny',
                       headers => ['Content-Type' => 'application/json'],
                       chunks => [ '{"channel":"', ch('f' x 200), '"}' ]) });

$r = reg({ channel => ch('limits'), user => 'u' x 255, device => 'd' x 255,
           os => 'o' x 255, tags => [ map { sprintf('%064d', $_) } 1 .. 16 ]
         });
is($r->{status}, 201, 'largest values accepted') or diag($r->{raw});
is(scalar @{$r->{json}{tags}}, 16, 'sixteen tags');
$r = reg({ channel => ch('dup'), tags => ['a', 'b', 'a', ''] });
is_deeply($r->{json}{tags}, ['a', 'b'], 'tags de-duplicated, empty ignored');
$r = reg({ channel => ch('esc'), user => "q\"u\\o\x{e9}" });
is($r->{status}, 201, 'escapes');
is($r->{json}{user}, "q\"u\\o\x{e9}", 'escaped and unescaped');

is(total(), 8, 'no refused request changed anything');

# methods

$r = $t->http('PUT', '/channels', body => '{}');
is($r->{status}, 405, 'PUT: 405');
is($r->{headers}{allow}, 'GET, POST, DELETE', 'Allow header');
is_deeply($r->{json}, { error => 'method not allowed', field => 'method' },
          '405 body');

###############################################################################

# deleting

$r = del('channel=' . uri_escape(ch('u5')));
is($r->{status}, 200, 'delete by channel: 200');
is_deeply($r->{json}, { deleted => 1 }, '{"deleted":1}');

$r = del('channel=' . uri_escape(ch('u5')));
is($r->{status}, 404, 'again: 404');
is_deeply($r->{json}, { error => 'not registered', field => 'channel',
                        deleted => 0 }, '404 body');

$r = del('device=bob-phone');
is_deeply([ $r->{status}, $r->{json} ], [ 200, { deleted => 1 } ],
          'delete by device');
$r = del('device=bob');
is_deeply($r->{json}, { deleted => 1 }, 'device "bob", not user "bob"');

reg({ channel => ch('c1'), user => 'carol', device => 'c-1' });
reg({ channel => ch('c2'), user => 'carol', device => 'c-2' });
reg({ channel => ch('c3'), user => 'carol' });
$r = del('user=carol');
is_deeply([ $r->{status}, $r->{json} ], [ 200, { deleted => 3 } ],
          'delete by user: every owner kind');
is(del('user=carol')->{status}, 404, 'user gone');

$r = $t->http('DELETE', '/channels',
              body => '{"channel":"' . ch('dup') . '"}',
              headers => ['Content-Type' => 'application/json']);
is_deeply([ $r->{status}, $r->{json} ], [ 200, { deleted => 1 } ],
          'delete with a JSON body');

refused('no selector', 400, 'missing field', 'channel',
        sub { $t->http('DELETE', '/channels') });
refused('two selectors', 400, 'conflicting field', 'user',
        sub { del('device=x&user=y') });
refused('query and body', 400, 'conflicting field', 'device',
        sub { $t->http('DELETE', '/channels?channel=x',
                       body => '{"device":"y"}',
                       headers => ['Content-Type' => 'application/json']) });
refused('unknown key in body', 400, 'unknown field', 'os',
        sub { $t->http('DELETE', '/channels', body => '{"os":"y"}',
                       headers => ['Content-Type' => 'application/json']) });
refused('empty selector', 400, 'invalid value', 'device',
        sub { del('device=') });

###############################################################################

# listing: filters and pages

my %want;

for my $i (1 .. 23) {
    my $e = { channel => ch(sprintf 'p%02d', $i), device => "pd$i",
              user => ($i % 3 ? 'dave' : 'erin'),
              os => ($i % 2 ? 'wp8' : 'wp7'),
              tags => [ $i % 4 ? () : 'vip', 'all' ] };
    reg($e)->{status} == 201 or die "register $i";
    $want{$e->{channel}} = $e;
}

sub filtered {
    my ($q) = @_;
    my $r = list("$q&limit=1000");
    return join ' ', sort map { $_->{channel} =~ m{/ch/(\w+)$} }
                     @{$r->{json}{channels}};
}

sub expect {
    my ($cond) = @_;
    return join ' ', sort map { m{/ch/(\w+)$} }
                     grep { $cond->($want{$_}) } keys %want;
}

is(filtered('user=erin'), expect(sub { $_[0]{user} eq 'erin' }),
   'filter by user');
is(filtered('tag=vip'), expect(sub { grep { $_ eq 'vip' } @{$_[0]{tags}} }),
   'filter by tag');
is(filtered('os=wp7'), expect(sub { $_[0]{os} eq 'wp7' }), 'filter by os');
is(filtered('user=dave&os=wp8&tag=all'),
   expect(sub { $_[0]{user} eq 'dave' && $_[0]{os} eq 'wp8' }),
   'filters combined');
is(filtered('os=WP7'), '', 'filters are case-sensitive');
is(filtered('user=nobody'), '', 'no match');

$r = list('user=erin&limit=1000');
is($r->{json}{total}, total(), 'total counts the whole zone');
is($r->{json}{next}, undef, 'next null at the end');

my $n = total();
my ($all, $pages) = all_channels(undef, 4);
is(scalar @$all, $n, "pages of 4: all $n entries");
my %seen;
$seen{$_}++ for @$all;
is(scalar(grep { $seen{$_} != 1 } keys %seen), 0, 'each exactly once');
is($pages, int(($n + 3) / 4), 'as many pages as needed');
ok(!(grep { !$seen{$_} } keys %want), 'all registered ones listed');

($all) = all_channels('user=dave', 5);
is(join(' ', sort map { m{/ch/(\w+)$} } @$all),
   expect(sub { $_[0]{user} eq 'dave' }), 'filtered pages');

$r = list('limit=2&after=' . uri_escape('http://127.0.0.1/none'));
is($r->{status}, 200, 'after an unknown channel');
$r = list('limit=1');
is(scalar @{$r->{json}{channels}}, 1, 'limit=1');
ok(defined $r->{json}{next}, 'next given');
is($r->{json}{next}, $r->{json}{channels}[0]{channel},
   'next is the last channel');

refused('limit 0', 400, 'invalid value', 'limit', sub { list('limit=0') });
refused('limit 1001', 400, 'invalid value', 'limit',
        sub { list('limit=1001') });
refused('limit abc', 400, 'invalid value', 'limit',
        sub { list('limit=abc') });

is(list('limit=1000')->{status}, 200, 'limit 1000');
is(scalar @{list()->{json}{channels}}, $n, 'default limit 100');

is(join("\n", $t->log_since('error')), '', 'no [error] lines');

###############################################################################

# persistence: stopped right away, within the 1 s delay

$r = reg({ channel => ch('last'), user => 'zed', tags => ['x'] });
is($r->{status}, 201, 'registered just before stopping');
my $before = list('limit=1000')->{json}{channels};

$t->stop;

my @lines = split /\n/, slurp($state);
is(scalar @lines, scalar @$before, 'state file has every entry');
my @parsed = map { eval { JSON::PP->new->utf8->decode($_) } } @lines;
is(scalar(grep { ref eq 'HASH' } @parsed), scalar @lines,
   'one JSON object a line');
is_deeply([ sort { $a->{channel} cmp $b->{channel} } @parsed ],
          [ sort { $a->{channel} cmp $b->{channel} } @$before ],
          'the same entries as the API gave');
like(slurp($state), qr/\n\z/, 'ends with a newline');
is_deeply([ glob "$dir/state/*.tmp" ], [], 'no temp file left');

$t->run;
$t->log_mark;

is_deeply(list('limit=1000')->{json}{channels}, $before,
          'started again: the same entries');
ok((grep { /mpns registry zone "reg": loaded ${\ scalar @lines} entries/ }
    $t->error_log_lines('notice')), 'loaded, logged');

# reload, same size: the zone is kept

reg({ channel => ch('hup1') });
$n = total();
$t->reload;
is(total(), $n, 'reload, same size: entries kept');
ok(!(grep { /migrated/ } $t->log_since('notice')), 'zone reused');

# reload, new size: migrated from the old zone, the newest one included

reg({ channel => ch('hup2'), device => 'hup' });
$n = total();
$t->write_conf(conf(size => '2m'))->reload;
is(total(), $n, 'reload, bigger zone: entries carried over');
is(del('device=hup')->{json}{deleted}, 1, 'the one added just before');
ok((grep { /mpns registry zone "reg": migrated $n entries/ }
    $t->log_since('notice')), 'migration logged');

# and the new zone saves what it got

reg({ channel => ch('after-migration') });
$t->wait_for(sub { slurp($state) =~ /after-migration/ }, 5);
like(slurp($state), qr/after-migration/, 'saved after a second');
is(scalar(() = slurp($state) =~ /\n/g), total(), 'the whole zone saved');

# bad lines in the state file are skipped

$t->stop;
$n = () = slurp($state) =~ /\n/g;
open my $fh, '>>', $state or die;
print $fh '{"channel":"' . ch('bad') . '","bogus":1}' . "\n";
print $fh "not json\n";
print $fh '{"channel":"' . ch('ok') . '"}' . "\n";
print $fh '{"channel":"' . ch('cut');
close $fh;
$t->run;
is(total(), $n + 1, 'good lines loaded, bad ones skipped');
my @warn = $t->log_since(qr/\[warn\].*mpns registry zone "reg": line/);
is(scalar @warn, 3, 'three lines warned about');
like($warn[0] // '', qr/line ${\ ($n + 1)} of ".*reg\.ndjson" skipped: unknown field, field "bogus"/,
     'warn names the line');

###############################################################################

# two workers, several clients at once

$t->stop;
unlink $state;
$t->write_conf(conf(workers => 2))->run;
$t->log_mark;

is(total(), 0, 'empty without a state file');

my @kids;

for my $k (1 .. 4) {
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        my $bad = 0;
        for my $i (1 .. 50) {
            my $r = $t->post_json('/channels',
                                  { channel => ch("k$k-$i"),
                                    device => "kid$k-$i" });
            $bad++ if ($r->{status} // 0) != 201;
        }
        POSIX::_exit($bad > 255 ? 255 : $bad);
    }

    push @kids, $pid;
}

my $failed = 0;
for (@kids) {
    waitpid($_, 0);
    $failed += $? >> 8;
}

is($failed, 0, 'every concurrent registration answered 201');
is(total(), 200, 'count exact');
($all) = all_channels(undef, 1000);
is(scalar @$all, 200, 'all listed');

$t->stop;
is(scalar(() = slurp($state) =~ /\n/g), 200, 'all saved');
is_deeply([ glob "$dir/state/*.tmp" ], [], 'no temp file left');
$t->run;

# a registry larger than one 64 KB buffer is saved in several slices while
# the worker keeps answering

for my $i (1 .. 400) {
    reg({ channel => ch(sprintf 'slice-%0150d', $i), device => "sl$i",
          tags => ['slices'] });
}

ok($t->wait_for(sub { scalar(() = slurp($state) =~ /\n/g) == 600 }, 10),
   'a save of more than one buffer: every entry in the file');
is(total(), 600, 'the zone');

{
    my @l = split /\n/, slurp($state);
    my %seen;
    $seen{ (JSON::PP::decode_json($_)->{channel}) }++ for @l;
    is(scalar keys %seen, 600, 'each entry once');
}

is_deeply([ glob "$dir/state/*.tmp" ], [], 'no temp file left');

###############################################################################

# a full zone

$t->tolerate(qr/mpns registry zone "small" is full/);
$t->log_mark;

my ($ok, $full) = (0, undef);

for my $i (1 .. 5000) {
    $r = reg({ channel => ch(sprintf('%0120d', $i)), device => "s$i" },
             uri => '/small');
    if ($r->{status} != 201) {
        $full = $r;
        last;
    }
    $ok++;
}

ok($full, "full after $ok entries") or BAIL_OUT('zone never full');
is($full->{status}, 507, 'answer 507');
is_deeply($full->{json}, { error => 'registry is full', field => 'channel' },
          '507 body');

is(reg({ channel => ch(sprintf('%0120d', 77777)), device => 's77777' },
       uri => '/small')->{status}, 507, 'still full');
is(reg({ channel => ch(sprintf('%0120d', 1)), device => 's1',
         tags => ['t' x 64, 'u' x 64] }, uri => '/small')->{status},
   507, 'an update needing a bigger slot: 507');

my @full = $t->log_since(qr/mpns registry zone "small" is full/);
is(scalar @full, 1, 'logged once');
like($full[0] // '', qr/\[crit\]/, 'at crit');

is(total('/small'), $ok, 'entries intact');
is($t->http('DELETE', '/small?channel=' . uri_escape(ch(sprintf '%0120d', 1)))
   ->{status}, 200, 'one deleted');

# the slab allocates by size class: the same size as the freed one
is(reg({ channel => ch(sprintf '%0120d', 99999), device => 's99999' },
       uri => '/small')->{status}, 201, 'room again');
is(reg({ channel => ch(sprintf '%0120d', 99998), device => 's99998' },
       uri => '/small')->{status}, 507, 'full again');
is(scalar $t->log_since(qr/mpns registry zone "small" is full/), 2,
   'logged again after a free');

diag(sprintf '64k zone: %d entries with 120-byte channels', $ok)
    if $ENV{TEST_VERBOSE};

$t->stop;

###############################################################################

# a state directory the workers cannot write: refused when the zone is set
# up, by "nginx -t", a start and a reload alike (as root: workers as
# nobody, whose credentials the master borrows for the check)

SKIP: {
    skip 'workers as nobody under valgrind', 13
        if $ENV{TEST_NGINX_VALGRIND} && $> == 0;

    my $u = MpnsTest->new;
    my $ud = $u->testdir;
    my $root = $> == 0;

    mkdir "$ud/ro" or die;

    # root may write anywhere: the workers run as nobody then, and their
    # directory is one they can reach whatever the test directory's parents
    my $rw = "$ud/rw";

    if ($root) {
        $rw = File::Temp::tempdir('mpns-rw-XXXXXX', DIR => '/tmp',
                                  CLEANUP => 1);
    } else {
        mkdir $rw or die;
    }

    chmod 0755, $ud;
    chmod($root ? 0755 : 0555, "$ud/ro");
    chmod 0755, $rw;
    chown((getpwnam 'nobody')[2], -1, $rw) if $root;

    my $conf = <<'EOF';

    mpns_registry_zone zone=reg:64k state=%%DIR%%/reg.state;
    mpns_outbox_zone zone=out:64k state=%%DIR%%/out.state;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /channels {
            mpns_registry reg;
        }
    }

EOF

    my $with = sub {
        my ($dir, $zones) = @_;
        my $c = http_conf($conf);
        $c =~ s/%%DIR%%/$dir/g;
        $c =~ s/^(\s*mpns_(?!$zones)\w+_zone \S+) state=\S+;/$1;/mg;
        $c =~ s/^(%%TEST_GLOBALS%%)$/$1\nuser nobody nogroup;/m if $root;
        return $c;
    };

    for my $kind (qw(registry outbox)) {
        my ($zone, $file) = $kind eq 'registry' ? ('reg', 'reg.state')
                                                : ('out', 'out.state');
        my $line = qr/\[emerg\] .*mpns $kind zone "$zone": state directory "\Q$ud\E\/ro" is not writable by worker processes: open\(\) "\Q$ud\E\/ro\/\Q$file\E\.\d+\.tmp" failed \(13: Permission denied\)/;

        my ($rc, $out) = $u->nginx_test($with->("$ud/ro", $kind));
        isnt($rc, 0, "$kind: nginx -t fails on an unwritable state directory");
        like($out, $line, "$kind: the [emerg] line names it") or diag($out);
        ok(!glob("$ud/ro/*.tmp"), "$kind: no file left behind");
    }

    my ($rc, $out) = $u->nginx_test($with->($rw, 'registry|outbox'));
    is($rc, 0, 'a state directory the workers can write passes')
        or diag($out);
    ok(!glob("$rw/*"), 'the check leaves nothing behind');

    # the master takes its own credentials back after the check
    $u->write_conf($with->($rw, 'registry|outbox'))->run;
    my ($uid) = slurp("/proc/$u->{master}/status") =~ /^Uid:\s+(.*)$/m;
    is($uid, join("\t", ($>) x 4), 'the master keeps its user');
    is($u->http_get('/channels')->{status}, 200, 'the registry works');

    # a reload into an unwritable directory is refused: the old one stays
    my $refused = qr/\[emerg\] .*mpns registry zone "reg": state directory "\Q$ud\E\/ro" is not writable/;
    my @workers = $u->worker_pids;

    $u->tolerate($refused);
    $u->write_conf($with->("$ud/ro", 'registry|outbox'));
    kill 'HUP', $u->{master};
    ok($u->wait_for(sub { $u->error_log_lines($refused) }, 5),
       'a reload into an unwritable directory is refused');
    is(join(' ', $u->worker_pids), join(' ', @workers), 'the workers stay');
    is($u->http_get('/channels')->{status}, 200, 'still served after it');

    $u->stop;
    chmod 0700, $ud;
    $u->done;
}

$t->done;

done_testing;
