#!/usr/bin/perl

# Tiles kept with the registry entries (docs/patterns.md): a counter that
# resets on logon (mpns_counter, mpns_register_tile clear) and ask to pin
# (mpns_last_tile, mpns_register_tile replay, mpns_pin_request), the
# counts and tiles in the state file across a reload and a restart, a
# state file with bad counts and tiles, the simulator's unpinned device,
# and the directives' mistakes.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Time::HiRes qw(sleep);

use lib 't/lib';
use MpnsTest qw(http_conf slurp);

my $t = MpnsTest->new;
my $dir = $t->testdir;

mkdir "$dir/state" or die "mkdir: $!";

$t->sim_start;

my $sim = $t->sim_port;
my $json = JSON::PP->new->utf8->canonical;
my $pin = '<pin>Pin the tile to see your count</pin>';

sub ch { "http://127.0.0.1:$sim/t/$_[0]" }

# a state file read at the first start: good lines, and lines whose count
# or tile must not be loaded

my $good_tile = '<?xml version=\"1.0\" encoding=\"utf-8\"?>'
    . '<wp:Notification xmlns:wp=\"WPNotification\"><wp:Tile>'
    . '<wp:Count>7</wp:Count></wp:Tile></wp:Notification>';

open my $fh, '>', "$dir/state/loaded.ndjson" or die "open: $!";
print $fh join '', map { "$_\n" }
    '{"channel":"' . ch('active-l1') . '","user":null,"device":"l1",'
    . '"tags":[],"os":null,"created":1700000000,"count":7,'
    . '"tile":"' . $good_tile . '"}',
    '{"channel":"' . ch('active-l2') . '","device":"l2","count":100}',
    '{"channel":"' . ch('active-l3') . '","device":"l3","count":"7"}',
    '{"channel":"' . ch('active-l4') . '","device":"l4",'
    . '"tile":"<b>not a tile</b>"}',
    '{"channel":"' . ch('active-l5') . '","device":"l5","tile":"<?xml '
    . ('x' x 1100) . '"}',
    '{"channel":"' . ch('active-l6') . '","device":"l6",'
    . '"tile":"<?xml \u0001"}';
close $fh;

# two workers: the counts are the registry's, whichever worker sends

my $conf = http_conf(<<"EOF_CONF");

    mpns_allowed_hosts ^127\\.0\\.0\\.1\$;
    mpns_retries 0;
    mpns_registry_zone zone=counted:1m state=state/counted.ndjson;
    mpns_registry_zone zone=pinned:1m;
    mpns_registry_zone zone=loaded:1m state=state/loaded.ndjson;
    mpns_registry_zone zone=tiny:32k;
    mpns_outbox_zone zone=out:1m;
    mpns_journal snapshot=1s;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /c/channels {
            mpns_registry counted;
            mpns_register_tile clear;
        }

        location = /c/push {
            mpns_send;
            mpns_counter counted;
        }

        location = /c/async {
            mpns_send;
            mpns_counter counted;
            mpns_outbox out;
            mpns_async on;
        }

        location = /c/broadcast {
            mpns_broadcast counted tile;
            mpns_counter counted;
        }

        location = /p/channels {
            mpns_registry pinned;
            mpns_register_tile replay;
            mpns_pin_request "$pin";
        }

        location = /p/push {
            mpns_send;
            mpns_last_tile pinned;
            mpns_pin_request "$pin";
        }

        location = /p/long {
            mpns_send;
            mpns_last_tile pinned;
            mpns_max_payload_size 4k;
        }

        location = /p/broadcast {
            mpns_broadcast pinned flip;
            mpns_last_tile pinned;
            mpns_pin_request "$pin";
        }

        location = /l/channels {
            mpns_registry loaded;
        }

        location = /f/channels {
            mpns_registry tiny;
        }

        location = /f/push {
            mpns_send;
            mpns_last_tile tiny;
        }

        location = /push {
            mpns_send;
        }
    }

EOF_CONF

$conf =~ s/^(%%TEST_GLOBALS%%)$/$1\nworker_processes 2;/m;

$t->write_conf($conf);
$t->run;

###############################################################################

# what the simulator got: [path, target header, class, body] each

sub sent {
    return map { [ $_->{target} =~ s{^/t/}{}r,
                   $_->{hdr}{'x-windowsphone-target'} // 'raw',
                   $_->{hdr}{'x-notificationclass'}, $_->{body} ] }
           @{$t->sim_requests};
}

sub counts {
    return map { $_->[3] =~ m{<wp:Count>(\d+)</wp:Count>} ? $1
               : $_->[3] =~ m{<wp:Count Action="Clear">} ? 'clear'
               : 'none' } sent();
}

sub entry {
    my ($uri, $channel) = @_;

    my $r = $t->http_get($uri . '?limit=1000');

    my ($e) = grep { $_->{channel} eq $channel }
              @{$r->{json}{channels} // []};

    return $e;
}

sub tile {
    my ($uri, $channel, %more) = @_;
    return $t->post_json($uri, { channel => $channel, type => 'tile',
                                 title => 'Inbox', %more });
}

###############################################################################

# Counter that resets on logon

subtest 'a registration of a new device sends nothing' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/c/channels',
                          { channel => ch('active-c1'), device => 'c1' });

    is($r->{status}, 201, 'status 201');
    ok(!exists $r->{json}{tile_send}, 'no tile_send');
    is_deeply([sent()], [], 'nothing sent');
};

subtest 'three sends show 1, 2, 3' => sub {
    $t->sim_reset;

    for (1 .. 3) {
        my $r = tile('/c/push', ch('active-c1'));
        is("$r->{status} $r->{json}{outcome}", '200 delivered', "send $_");
    }

    is_deeply([counts()], [1, 2, 3], 'counts on the wire');
    is(entry('/c/channels', ch('active-c1'))->{count}, 3, 'count stored');
    like(entry('/c/channels', ch('active-c1'))->{tile},
         qr{<wp:Count>3</wp:Count>},
         'the last tile stored with its count');
};

subtest 'a re-registration resets the count and clears the tile' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/c/channels',
                          { channel => ch('active-c1'), device => 'c1' });

    is($r->{status}, 200, 'status 200');
    is_deeply($r->{json}{tile_send}, { outcome => 'delivered',
                                       status => 200 }, 'tile_send');
    ok(!exists $r->{json}{pin_send}, 'no pin_send');
    ok(!exists $r->{json}{count}, 'count 0');

    my @s = sent();
    is(scalar @s, 1, 'one send');
    is($s[0][0], 'active-c1', 'to the channel');
    is("$s[0][1] $s[0][2]", 'token 1', 'a tile');
    like($s[0][3], qr{<wp:Tile><wp:Count Action="Clear"></wp:Count></wp:Tile>},
         'the count cleared');

    ok(!exists entry('/c/channels', ch('active-c1'))->{count},
       'count 0 in the registry');

    $t->sim_reset;
    tile('/c/push', ch('active-c1'));
    is_deeply([counts()], [1], 'the next send shows 1');
};

subtest 'a registration with a count sets it' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/c/channels', { channel => ch('active-c1'),
                                           device => 'c1', count => 41 });

    is($r->{status}, 200, 'status 200');
    is($r->{json}{count}, 41, 'count 41');
    is_deeply([counts()], ['clear'], 'the shown count cleared');

    $t->sim_reset;
    tile('/c/push', ch('active-c1'));
    is_deeply([counts()], [42], 'counted from there');

    $t->post_json('/c/channels', { channel => ch('active-c1'),
                                   device => 'c1', count => 99 });

    $t->sim_reset;
    tile('/c/push', ch('active-c1'));
    is_deeply([counts()], [99], 'a count stays at 99');

    $t->post_json('/c/channels', { channel => ch('active-c1'),
                                   device => 'c1' });
};

subtest 'a new channel of the device resets the count too' => sub {
    $t->post_json('/c/channels', { channel => ch('active-c2'),
                                   device => 'c2' });
    tile('/c/push', ch('active-c2'));
    tile('/c/push', ch('active-c2'));

    $t->sim_reset;

    my $r = $t->post_json('/c/channels', { channel => ch('active-c2b'),
                                           device => 'c2' });

    is($r->{status}, 201, 'status 201');
    is($r->{json}{replaced}, ch('active-c2'), 'replaced');
    is($r->{json}{tile_send}{outcome}, 'delivered', 'tile_send');

    my @s = sent();
    is_deeply([map { $_->[0] } @s], ['active-c2b'], 'to the new channel');
    is_deeply([counts()], ['clear'], 'cleared');
};

subtest 'other types are not counted' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/c/push', { channel => ch('active-c1'),
                                       type => 'toast', text1 => 'Hi' });

    is("$r->{status} $r->{json}{outcome}", '200 delivered', 'toast sent');
    is_deeply([counts()], ['none'], 'no count');
    ok(!exists entry('/c/channels', ch('active-c1'))->{count}, 'count 0');
};

subtest 'a broadcast sends each device its own count' => sub {
    $t->post_json('/c/channels', { channel => ch('active-c3'),
                                   device => 'c3', tags => ['b'] });
    $t->post_json('/c/channels', { channel => ch('active-c4'),
                                   device => 'c4', tags => ['b'] });
    $t->post_json('/c/channels', { channel => ch('active-c5'),
                                   device => 'c5', tags => ['b'] });

    tile('/c/push', ch('active-c3')) for 1 .. 4;
    tile('/c/push', ch('active-c4'));

    $t->sim_reset;

    my $r = $t->post_json('/c/broadcast?tag=b', { title => 'News' });

    is($r->{status}, 200, 'status 200');
    is($r->{json}{sent}, 3, 'three sent');
    ok(!exists $r->{json}{pin_sends}, 'no pin_sends without a pin request');

    my %got = map { $_->[0] => ($_->[3] =~ m{<wp:Count>(\d+)<})[0] } sent();

    is_deeply(\%got, { 'active-c3' => 5, 'active-c4' => 2,
                       'active-c5' => 1 }, 'counts per device');

    is(entry('/c/channels', ch('active-c3'))->{count}, 5, 'c3 stored');
    is(entry('/c/channels', ch('active-c5'))->{count}, 1, 'c5 stored');
};

subtest 'a list: a channel not registered is refused, the others counted'
=> sub {
    $t->sim_reset;

    my $r = $t->post_json('/c/push', { type => 'tile', title => 'List',
                                       channels => [ ch('active-c5'),
                                                     ch('active-none') ] });

    is($r->{status}, 200, 'status 200');
    is_deeply($r->{json}{outcomes}, { delivered => 1, refused => 1 },
              'outcomes');
    is_deeply([map { $_->[0] } sent()], ['active-c5'], 'one sent');
    is_deeply([counts()], [2], 'counted');
};

subtest 'mistakes send nothing and count nothing' => sub {
    $t->sim_reset;

    my $r = tile('/c/push', ch('active-c1'), count => 5);
    is($r->{status}, 400, 'a count given: 400');
    is_deeply($r->{json}, { error => 'count is kept by mpns_counter',
                            field => 'count' }, 'error');

    $r = tile('/c/push', ch('active-c1'), clear => ['count']);
    is($r->{status}, 400, 'the count cleared: 400');
    is($r->{json}{field}, 'count', 'field count');

    $r = tile('/c/push', ch('active-nobody'));
    is($r->{status}, 404, 'not registered: 404');
    is_deeply($r->{json}, { error => 'not registered', field => 'channel' },
              'error');

    $r = tile('/c/async', ch('active-c1'), async => JSON::PP::true);
    is($r->{status}, 400, 'async: 400');
    is_deeply($r->{json}, { error => 'tiles of a registry are sent in '
                                     . 'wait mode', field => 'type' },
              'error');

    for my $count (100, -1, '"5"', '1.5') {
        $r = $t->post_json('/c/channels', '{"channel":"' . ch('active-c1')
                                          . '","device":"c1","count":'
                                          . $count . '}');
        is($r->{status}, 400, "a registration with count $count: 400");
        is_deeply($r->{json}, { error => 'invalid value', field => 'count' },
                  'error');
    }

    $r = $t->post_json('/c/channels', { channel => ch('active-c1'),
                                        tile => '<?xml x' });
    is_deeply($r->{json}, { error => 'unknown field', field => 'tile' },
              'a tile cannot be registered');

    is_deeply([sent()], [], 'nothing sent');
    ok(!exists entry('/c/channels', ch('active-c1'))->{count},
       'nothing counted');
    ok(!entry('/c/channels', ch('active-nobody')), 'nothing registered');
};

subtest 'counts survive a reload and a restart' => sub {
    tile('/c/push', ch('active-c1')) for 1 .. 2;

    $t->reload;

    $t->sim_reset;
    tile('/c/push', ch('active-c1'));
    is_deeply([counts()], [3], 'after a reload');

    # a zone of another size: the entries are copied into the new one

    $t->write_conf($conf =~ s/zone=counted:1m/zone=counted:2m/r);
    $t->reload(wait_old => 1);

    like($t->error_log, qr/zone "counted": migrated \d+ entries/,
         'a new zone');

    $t->sim_reset;
    tile('/c/push', ch('active-c1'));
    is_deeply([counts()], [4], 'after a reload to a new zone');
    like(entry('/c/channels', ch('active-c1'))->{tile},
         qr{<wp:Count>4</wp:Count>}, 'the tile copied');

    $t->stop;

    like(slurp("$dir/state/counted.ndjson"),
         qr/"channel":"\Q${\ ch('active-c1')}\E"[^\n]*"count":4,"tile":"/,
         'count and tile in the state file');

    $t->run;

    $t->sim_reset;
    tile('/c/push', ch('active-c1'));
    tile('/c/push', ch('active-c3'));
    is_deeply([counts()], [5, 6], 'after a restart');

    $t->sim_reset;
    $t->post_json('/c/channels', { channel => ch('active-c1'),
                                   device => 'c1' });
    is_deeply([counts()], ['clear'], 'a registration still clears');
};

###############################################################################

# Ask to pin

subtest 'the simulator: an unpinned device suppresses tiles only' => sub {
    $t->sim_reset;

    my $r = tile('/push', ch('unpinned-s1'));
    is("$r->{status} $r->{json}{outcome}", '200 suppressed', 'tile');
    is($r->{json}{notification_status}, 'Suppressed', 'Suppressed');
    is($r->{json}{subscription_status}, 'Active', 'Active');
    is($r->{json}{device_connection_status}, 'Connected', 'Connected');

    $r = $t->post_json('/push', { channel => ch('unpinned-s1'),
                                  type => 'raw', payload => '<a/>' });
    is("$r->{status} $r->{json}{outcome}", '200 delivered', 'raw');
    is($r->{json}{notification_status}, 'Received', 'Received');

    $r = $t->post_json('/push', { channel => ch('unpinned-s1'),
                                  type => 'toast', text1 => 'Hi' });
    is("$r->{status} $r->{json}{outcome}", '200 delivered', 'toast');

    $t->sim_script('/t/s2', [ { state => 'unpinned' } ]);

    $r = tile('/push', ch('s2'));
    is($r->{json}{outcome}, 'suppressed', 'scripted');
};

subtest 'an unpinned device gets the tile, then the pin request' => sub {
    $t->post_json('/p/channels', { channel => ch('unpinned-p1'),
                                   device => 'p1', tags => ['b'] });
    $t->post_json('/p/channels', { channel => ch('active-p2'),
                                   device => 'p2', tags => ['b'] });

    $t->sim_reset;

    my $r = tile('/p/push', ch('unpinned-p1'), count => 3);

    is("$r->{status} $r->{json}{outcome}", '200 suppressed', 'the tile');
    is_deeply($r->{json}{pin_send}, { outcome => 'delivered',
                                      status => 200 }, 'pin_send');

    my @s = sent();
    is(scalar @s, 2, 'two sends');
    is("$s[0][0] $s[0][1] $s[0][2]", 'unpinned-p1 token 1', 'a tile first');
    like($s[0][3], qr{<wp:Count>3</wp:Count>}, 'the tile as asked');
    is("$s[1][0] $s[1][1] $s[1][2]", 'unpinned-p1 raw 3', 'then raw');
    is($s[1][3], $pin, 'the configured payload');

};

subtest 'a pinned device gets the tile only' => sub {
    $t->sim_reset;

    my $r = tile('/p/push', ch('active-p2'), count => 4);

    is("$r->{status} $r->{json}{outcome}", '200 delivered', 'the tile');
    ok(!exists $r->{json}{pin_send}, 'no pin_send');
    is_deeply([map { "$_->[0] $_->[1]" } sent()], ['active-p2 token'],
              'one send');
};

subtest 'a tile of a device not shown is followed up too' => sub {
    $t->sim_reset;

    $t->sim_script('/t/p9', [ { status => 200, headers => {
        'X-NotificationStatus' => 'Received',
        'X-SubscriptionStatus' => 'Active',
        'X-DeviceConnectionStatus' => 'TempDisconnected' } } ]);

    my $r = tile('/p/push', ch('p9'));

    is($r->{json}{outcome}, 'delivered', 'delivered');
    is($r->{json}{pin_send}{outcome}, 'delivered', 'pin_send');
    is_deeply([map { $_->[1] } sent()], ['token', 'raw'], 'tile, raw');

    $t->sim_reset;

    $r = tile('/p/push', ch('expired-p9'));
    is($r->{json}{outcome}, 'expired', 'expired');
    ok(!exists $r->{json}{pin_send}, 'no pin request to an expired channel');
    is(scalar(sent()), 1, 'one send');

    $t->sim_reset;

    $r = $t->post_json('/p/push', { channel => ch('unpinned-p1'),
                                    type => 'toast', text1 => 'Hi' });
    ok(!exists $r->{json}{pin_send}, 'no pin request after a toast');
    is(scalar(sent()), 1, 'one send');
};

subtest 'a registration sends the last tile again' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/p/channels', { channel => ch('unpinned-p1'),
                                           device => 'p1', tags => ['b'] });

    is($r->{status}, 200, 'status 200');
    is_deeply($r->{json}{tile_send}, { outcome => 'suppressed',
                                       status => 200 }, 'tile_send');
    is_deeply($r->{json}{pin_send}, { outcome => 'delivered',
                                      status => 200 }, 'pin_send');

    my @s = sent();
    is_deeply([map { "$_->[0] $_->[1] $_->[2]" } @s],
              ['unpinned-p1 token 1', 'unpinned-p1 raw 3'], 'tile, raw');
    like($s[0][3], qr{<wp:Title>Inbox</wp:Title>.*<wp:Count>3</wp:Count>|
                      <wp:Count>3</wp:Count>.*<wp:Title>Inbox</wp:Title>}x,
         'the last tile');
    is($s[1][3], $pin, 'the pin request');

    $t->sim_reset;

    $r = $t->post_json('/p/channels', { channel => ch('active-p2b'),
                                        device => 'p2', tags => ['b'] });

    is($r->{status}, 201, 'a new channel of the device: 201');
    is($r->{json}{tile_send}{outcome}, 'delivered', 'tile_send');
    ok(!exists $r->{json}{pin_send}, 'pinned: no pin_send');

    @s = sent();
    is_deeply([map { "$_->[0] $_->[1]" } @s], ['active-p2b token'],
              'the last tile, to the new channel');
    like($s[0][3], qr{<wp:Count>4</wp:Count>}, 'the tile p2 last had');

    $t->sim_reset;

    $r = $t->post_json('/p/channels', { channel => ch('active-p3'),
                                        device => 'p3' });
    is($r->{status}, 201, 'a device without a tile: 201');
    ok(!exists $r->{json}{tile_send}, 'nothing sent');
    is_deeply([sent()], [], 'nothing on the wire');
};

subtest 'tiles not kept: a channel not registered, a long tile' => sub {
    $t->sim_reset;

    my $r = tile('/p/push', ch('active-nobody'));
    is($r->{json}{outcome}, 'delivered', 'sent to a channel not registered');
    ok(!entry('/p/channels', ch('active-nobody')), 'nothing registered');

    $t->post_json('/p/channels', { channel => ch('active-p4'),
                                   device => 'p4' });
    tile('/p/long', ch('active-p4'));
    like(entry('/p/channels', ch('active-p4'))->{tile}, qr/Inbox/, 'kept');

    tile('/p/long', ch('active-p4'), title => 'x' x 1100);
    ok(!exists entry('/p/channels', ch('active-p4'))->{tile},
       'a tile over 1024 bytes is not kept, nor the one before');
};

subtest 'a full registry: the tile is refused, nothing is sent' => sub {
    $t->tolerate(qr/\[crit\].*mpns registry zone "tiny" is full/);

    my ($r, $n);

    for ($n = 0; $n < 2000; $n++) {
        $r = $t->post_json('/f/channels', { channel => ch("active-f$n") });
        last if $r->{status} != 201;
    }

    is($r->{status}, 507, "full after $n entries");

    # an entry with a tile needs a larger slot: some are free, then none

    $t->sim_reset;

    my $full;

    for my $i (0 .. $n - 1) {
        $r = tile('/f/push', ch("active-f$i"));

        if ($r->{status} != 200) {
            $full = "active-f$i";
            last;
        }
    }

    ok(defined $full, 'a tile found no room');
    is($r->{status}, 507, 'a tile to keep: 507');
    is_deeply($r->{json}, { error => 'registry is full', field => 'channel' },
              'error');
    ok(!grep({ $_->[0] eq ($full // '') } sent()), 'nothing sent to it');
    ok(!exists entry('/f/channels', ch($full // ''))->{tile}, 'nothing kept');
    ok(entry('/f/channels', ch($full // '')), 'still registered');
};

subtest 'a broadcast follows up on every device not showing it' => sub {
    $t->sim_reset;

    my $r = $t->post_json('/p/broadcast?tag=b', { title => 'News' });

    is($r->{status}, 200, 'status 200');
    is($r->{json}{sent}, 2, 'two recipients');
    is($r->{json}{pin_sends}, 1, 'one pin request');

    my @s = sent();
    is_deeply([sort map { "$_->[0] $_->[1]" } @s],
              ['active-p2b token', 'unpinned-p1 raw', 'unpinned-p1 token'],
              'tiles, and the raw notification to the unpinned device');

    $t->sim_reset;
    $t->post_json('/p/channels', { channel => ch('active-p2b'),
                                   device => 'p2', tags => ['b'] });
    like((sent())[0][3], qr{FlipTile.*<wp:Title>News</wp:Title>},
         'the broadcast is the last tile now');
};

###############################################################################

# the state file

subtest 'a state file: counts and tiles checked as they are loaded' => sub {
    my $log = $t->error_log;

    like($log, qr/\[notice\].*zone "loaded": loaded 1 entries/,
         'one entry loaded');

    for my $n (2 .. 6) {
        like($log, qr/\[warn\].*line $n\b/, "line $n skipped");
    }

    my $e = entry('/l/channels', ch('active-l1'));
    is($e->{count}, 7, 'count');
    like($e->{tile}, qr{<wp:Count>7</wp:Count>}, 'tile');
};

###############################################################################

# the recipes of docs/patterns.md, as they are but for the port, the state
# file and the allow-lists of the simulator's channels

sub recipe {
    my ($title, $n) = @_;

    my $doc = slurp("$MpnsTest::ROOT/docs/patterns.md");
    my ($section) = $doc =~ /^## \Q$title\E\n(.*?)(?=^## |\z)/ms;
    my ($conf) = ($section // '') =~ /^```nginx\n(.*?)^```$/ms;

    die "no nginx.conf in \"$title\"" if !defined $conf;

    my $allow = "    %%TEST_GLOBALS_HTTP%%\n"
                . "    mpns_allowed_hosts ^127\\.0\\.0\\.1\$;\n"
                . "    mpns_allowed_addresses 127.0.0.0/8;\n"
                . "    mpns_allowed_ports 1-65535;\n";

    $conf =~ s{^load_module \S+;$}{%%TEST_GLOBALS%%}m or die 'load_module';
    $conf =~ s{^(http \{\n)}{$1$allow}m or die 'http';
    $conf =~ s{/var/lib/nginx/mpns/devices\.ndjson}
              {%%TESTDIR%%/state/recipe$n.ndjson} or die 'state';
    $conf =~ s{listen 127\.0\.0\.1:8080;}{listen 127.0.0.1:%%PORT%%;}
        or die 'listen';

    return $conf;
}

subtest 'the recipe: Counter that resets on logon' => sub {
    $t->restart(recipe('Counter that resets on logon', 1));

    my $r = $t->post_json('/channels', { channel => ch('active-r1'),
                                         device => 'lumia-920',
                                         user => 'alice' });
    is($r->{status}, 201, 'registered');

    $t->sim_reset;

    for (1 .. 3) {
        $r = $t->post_json('/push', { channel => ch('active-r1'),
                                      type => 'flip', title => 'Mail',
                                      back_content => 'From Bob: lunch?' });
        is($r->{json}{outcome}, 'delivered', "tile $_");
    }

    is_deeply([counts()], [1, 2, 3], 'counts 1, 2, 3');
    is(entry('/channels', ch('active-r1'))->{count}, 3, 'count 3');

    $t->sim_reset;

    $r = $t->post_json('/channels', { channel => ch('active-r1'),
                                      device => 'lumia-920',
                                      user => 'alice' });
    is($r->{status}, 200, 'registered again');
    is($r->{json}{tile_send}{outcome}, 'delivered', 'tile_send');
    is_deeply([counts()], ['clear'], 'the count cleared');

    $t->sim_reset;

    $r = $t->post_json('/broadcast/tile?user=alice', { title => 'Mail' });
    is($r->{json}{sent}, 1, 'broadcast');
    is_deeply([counts()], [1], 'shows 1 again');
};

subtest 'the recipe: Ask to pin' => sub {
    $t->restart(recipe('Ask to pin', 2));

    my $r = $t->post_json('/channels', { channel => ch('unpinned-r2'),
                                         device => 'lumia-920' });
    is($r->{status}, 201, 'registered');
    ok(!exists $r->{json}{tile_send}, 'no tile yet');

    $t->sim_reset;

    $r = $t->post_json('/push', { channel => ch('unpinned-r2'),
                                  type => 'flip', title => 'Weather',
                                  back_content => 'Sunny' });
    is($r->{json}{outcome}, 'suppressed', 'tile suppressed');
    is($r->{json}{pin_send}{outcome}, 'delivered', 'pin_send');
    is_deeply([map { $_->[3] } grep { $_->[1] eq 'raw' } sent()],
              ["<pin reason='tile'/>"], 'the pin request');

    $t->sim_reset;

    $r = $t->post_json('/channels', { channel => ch('unpinned-r2'),
                                      device => 'lumia-920' });
    is($r->{json}{tile_send}{outcome}, 'suppressed', 'tile sent again');
    is($r->{json}{pin_send}{outcome}, 'delivered', 'pin_send');
    like((sent())[0][3], qr{<wp:BackContent>Sunny</wp:BackContent>},
         'the last tile');
};

###############################################################################

# directives

sub conf_test {
    my ($l) = @_;

    my ($rc, $out) = $t->nginx_test(http_conf(<<"EOF_CONF"));

    mpns_registry_zone zone=r:1m;
    mpns_outbox_zone zone=o:1m;

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /x {
            $l
        }
    }

EOF_CONF

    my ($msg) = $out =~ /^nginx: \[emerg\] (.*) in \S+\.conf:\d+$/m;

    return ($rc, $msg // $out);
}

for my $case (
    [ 'mpns_counter r; mpns_counter r;',
      '"mpns_counter" directive is duplicate' ],
    [ 'mpns_counter r; mpns_last_tile r;',
      '"mpns_last_tile" directive is duplicate' ],
    [ 'mpns_counter nope;', 'unknown mpns_registry_zone "nope"' ],
    [ 'mpns_last_tile nope;', 'unknown mpns_registry_zone "nope"' ],
    [ 'mpns_register_tile again;',
      'invalid value "again"' ],
    [ 'mpns_pin_request "";', 'invalid value ""' ],
    [ 'mpns_pin_request "' . ('x' x 1025) . '";',
      'payload is longer than 1024 bytes' ],
    [ 'mpns_pin_request a; mpns_pin_request b;',
      '"mpns_pin_request" directive is duplicate' ],
    [ 'mpns_send; mpns_counter r; mpns_outbox o; mpns_mode background;',
      'tiles of a registry are sent in wait mode' ],
    [ 'mpns_broadcast r; mpns_pin_request a; mpns_outbox o; '
      . 'mpns_mode background;',
      'tiles of a registry are sent in wait mode' ],
    )
{
    my ($rc, $msg) = conf_test($case->[0]);
    isnt($rc, 0, "$case->[0] refused");
    is($msg, $case->[1], 'message');
}

for my $ok ('mpns_counter off;', 'mpns_last_tile r;', 'mpns_pin_request off;',
            'mpns_register_tile replay; mpns_registry r;',
            'mpns_send; mpns_outbox o; mpns_mode background;',
            'mpns_send; mpns_counter r; mpns_outbox o; mpns_async on;')
{
    my ($rc, $msg) = conf_test($ok);
    is($rc, 0, "$ok taken") or diag $msg;
}

$t->done;

done_testing;
