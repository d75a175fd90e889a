#!/usr/bin/perl

# Every header of the module stands alone: a file that includes only it
# compiles, with nginx's include paths and -Werror, the way the build
# compiles the module.  The forward declarations every area shares are in
# ngx_http_mpns.h; no header may rely on another being included first.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use FindBin;

my $root = "$FindBin::Bin/..";
my $src = $ENV{TEST_NGINX_SRC} // "$root/build/nginx";

plan skip_all => "no configured nginx tree in $src (make module first)"
    if !-f "$src/objs/ngx_auto_config.h";

my $cc = $ENV{CC} // 'cc';
my @inc = map { "-I$src/$_" } qw(src/core src/event src/event/modules
                                 src/os/unix objs src/http src/http/modules
                                 src/http/v2);
my $dir = tempdir(CLEANUP => 1);

my @headers = sort glob "$root/ngx_mpns_module/*.h";
ok(scalar @headers, 'headers found');

for my $h (@headers) {
    my ($name) = $h =~ m{([^/]+)$};

    open(my $fh, '>', "$dir/t.c") or die "$dir/t.c: $!";
    print $fh "#include <$name>\n";
    close $fh;

    my $out = `$cc -fsyntax-only -Wall -Werror @inc -I$root/ngx_mpns_module $dir/t.c 2>&1`;
    is($?, 0, "$name compiles on its own") or diag($out);
}

done_testing;
