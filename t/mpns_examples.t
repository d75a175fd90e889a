#!/usr/bin/perl

# The complete nginx.conf files of docs/examples/ that README.md gives a
# newcomer, as they are but for the paths and ports of the test: the
# simulator's one runs and delivers what README.md sends, the production
# one passes "nginx -t"; README.md shows both unchanged.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use MpnsTest qw(slurp uri_escape);

my $root = $MpnsTest::ROOT;
my $readme = slurp("$root/README.md");

my $t = MpnsTest->new;
my $d = $t->testdir;

# the paths of the system's nginx and the fixed ports, for the test's
sub for_test {
    my ($conf) = @_;

    my $user = $> == 0 ? "user root;\n" : '';

    $conf =~ s{^(?:load_module \S+|include /etc/nginx/modules-enabled/\S+);$}
              {load_module $t->{module};}m
        or die 'no load_module';
    $conf =~ s{^user \S+;\n}{}m;
    $conf =~ s{^pid \S+;$}{${user}pid $d/nginx.pid;}m or die 'no pid';
    $conf =~ s{^error_log \S+( \w+)?;$}{error_log $d/error.log debug;}m;
    $conf =~ s|^http \{\n|http {\n    %%TEST_GLOBALS_HTTP%%\n|m;
    $conf =~ s{access_log /var/log/nginx/\S+?( \w+)?;}
              {"access_log $d/access.log" . ($1 // '') . ';'}ge;
    $conf =~ s{listen (?:127\.0\.0\.1:)?8080;}{listen 127.0.0.1:%%PORT%%;};
    $conf =~ s{/var/lib/nginx/mpns/}{$d/}g;
    $conf =~ s{^\s*include /etc/nginx/(?:conf\.d|sites-enabled)/.*\n}{}mg;

    return $conf;
}

for my $name (qw(simulator production)) {
    my $file = "$root/docs/examples/$name.conf";
    ok(index($readme, slurp($file)) >= 0,
       "README.md shows docs/examples/$name.conf as it is");
}

my ($rc, $out) = $t->nginx_test(
    for_test(slurp("$root/docs/examples/production.conf")));
is($rc, 0, 'production.conf: nginx -t') or diag($out);

###############################################################################

# the simulator's configuration, walked as README.md does

my $conf = slurp("$root/docs/examples/simulator.conf");

like($conf, qr/^events \{/m, 'simulator.conf is a whole nginx.conf');
like($conf, qr{^\s*# +mpns-simulator --listen 127\.0\.0\.1:8090}m,
     'it says how to start the simulator');

$t->sim_start;

my $sim = $t->sim_port;

$conf = for_test($conf);
$conf =~ s/127\.0\.0\.1:8090/127.0.0.1:$sim/g;
$conf =~ s/mpns_allowed_ports 8090;/mpns_allowed_ports $sim;/;

$t->write_conf($conf)->run;

my $ch = "http://127.0.0.1:$sim/throttledthirdparty/01.00/AAF";

$t->delivered('a toast to the simulator', sub {
    $t->post_json('/push', { channel => $ch, type => 'toast',
                             text1 => 'Hello' });
}, sub {
    my ($sent, $r) = @_;
    is($r->{json}{outcome}, 'delivered', 'outcome delivered');
    is($sent->{target}, '/throttledthirdparty/01.00/AAF', 'to the channel');
});

$t->delivered('the webhook, its channel URL-encoded', sub {
    $t->http_get('/hooks/order-shipped?channel=' . uri_escape($ch)
                 . '&order=42');
});

is($t->post_json('/channels', { channel => $ch, device => 'lumia',
                                tags => ['news'] })->{status}, 201,
   'a channel registered');

$t->delivered('a broadcast to it', sub {
    $t->post_json('/broadcast/toast?tag=news', { text1 => 'Breaking' });
});

$t->done;
done_testing;
