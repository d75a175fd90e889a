#!/usr/bin/perl

# The module's version: $mpns_version, the notice line logged when the
# configuration is loaded, and the same version at the top of CHANGES and
# debian/changelog.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use MpnsTest qw(http_conf slurp);

my $t = MpnsTest->new;

$t->write_conf(http_conf(<<'EOF_CONF'));

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /version {
            return 200 "$mpns_version\n";
        }
    }

EOF_CONF

$t->run;

my ($changes) = slurp("$MpnsTest::ROOT/CHANGES")
                =~ /^Changes with ngx_mpns_module (\S+) /m;

ok(defined $changes, 'CHANGES names a version');

my $r = $t->http_get('/version');
is($r->{status}, 200, 'answer 200');
is($r->{body}, "$changes\n", '$mpns_version is the version in CHANGES');

my $line = qr{\[notice\] .*ngx_http_mpns_module/\Q$changes\E built for nginx/\Q${\ $t->nginx_version }\E$};

is(scalar $t->error_log_lines($line), 1,
   'the version and the nginx it was built for, logged once at start')
    or diag($t->error_log);

$t->reload;
is(scalar $t->error_log_lines($line), 2, 'and again on a reload');

SKIP: {
    skip 'no debian/changelog', 1
        if !-f "$MpnsTest::ROOT/debian/changelog";

    my ($deb) = slurp("$MpnsTest::ROOT/debian/changelog")
                =~ /^\S+ \(([^)-]+)(?:-[^)]*)?\)/;
    is($deb, $changes, 'debian/changelog has the version of CHANGES');
}

$t->done;
done_testing;
