#!/usr/bin/perl

# The simulator's layout: util/mpns-simulator finds its modules beside
# itself when copied elsewhere with util/lib and run through a symbolic
# link, as an installed copy is; the generic modules of util/lib/MpnsSim/
# know nothing of MPNS; and another push service plugs into the server
# through the MpnsSim::Service interface alone, beside MPNS.  No nginx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use lib "$FindBin::Bin/../util/lib";

use Test::More;
use IO::Socket::INET;
use POSIX ();
use MpnsTest qw(slurp toast_xml);

use MpnsSim::Loop;
use MpnsSim::Server;
use MpnsSim::Service::Mpns;

my $t = MpnsTest->new;
my $util = "$MpnsTest::ROOT/util";

my @toast = (headers => ['Content-Type' => 'text/xml',
                         'X-WindowsPhone-Target' => 'toast',
                         'X-NotificationClass' => '2'],
             body => toast_xml(Text1 => 'Hi'));

###############################################################################

# an installed copy: the executable and lib/ in one directory, run through
# a symbolic link from another

{
    my $dir = $t->testdir;
    mkdir "$dir/$_" or die "mkdir $dir/$_: $!" for qw(share bin);
    system('cp', '-R', "$util/mpns-simulator", "$util/lib", "$dir/share/")
        == 0 or die "cp failed\n";
    symlink("$dir/share/mpns-simulator", "$dir/bin/mpns-simulator")
        or die "symlink: $!";

    local $ENV{MPNS_SIMULATOR} = "$dir/bin/mpns-simulator";
    local $ENV{PERL5LIB};
    $t->sim_start;
}

my $r = $t->http('POST', '/throttledthirdparty/01.00/expired-AAF',
                 port => $t->sim_port, @toast);
is($r->{status}, 404, 'installed copy: expired channel, 404');
is($r->{headers}{'x-subscriptionstatus'}, 'Expired',
   'installed copy: X-SubscriptionStatus Expired');

$r = $t->http('POST', '/t/x', port => $t->sim_port,
              headers => ['X-WindowsPhone-Target' => 'toast'],
              body => 'not xml');
is($r->{status}, 400, 'installed copy: the XML is validated');

###############################################################################

# the generic modules: no MPNS header, namespace, URI or XML parser

my @generic = grep { !m{/Service/} } glob "$util/lib/MpnsSim/*.pm";
ok(@generic >= 10, 'generic modules: ' . scalar @generic);

for my $file (@generic) {
    my @words = slurp($file) =~ /(X-(?:Notification|WindowsPhone|Subscription
                                     |DeviceConnection|MessageID|CallbackURI)
                                  |WPNotification|LibXML|thirdparty)/gix;
    ok(!@words, "$file names nothing of MPNS") or diag("@words");
}

###############################################################################

# another service beside MPNS, through the interface alone

{
    package Toy;

    use parent -norequire, 'MpnsSim::Service';

    sub new { return bless { hits => 0 }, shift }

    sub match {
        my ($self, $ex) = @_;
        return $ex->path =~ m{\A/toy/};
    }

    sub handle {
        my ($self, $ex) = @_;
        $self->{hits}++;
        $ex->record(toy => $ex->method);
        if ($ex->path eq '/toy/later') {
            $ex->later(50, sub { $ex->answer(202, [['X-Toy', 'later']]) });
            return;
        }
        $ex->answer(200, [['X-Toy', 'now']], body => 'toy',
                    type => 'text/plain');
    }

    sub stats { return { toy_hits => $_[0]{hits} } }

    sub reset { $_[0]{hits} = 0 }

    sub record_fields { return ([toy => undef]) }

    sub knows_state { return $_[1] eq 'toyish' }
}

my $port = $t->port('toy');
my $pid = fork() // die "fork: $!";

if (!$pid) {
    my $loop = MpnsSim::Loop->new;
    $SIG{TERM} = sub { $loop->stop };
    my $server = MpnsSim::Server->new(loop => $loop, name => 'toy-simulator');
    $server->add_service(Toy->new);
    $server->add_service(MpnsSim::Service::Mpns->new);
    $loop->listen('127.0.0.1', $port, "127.0.0.1:$port",
                  sub { $server->accept_plain(@_) });
    $loop->run;
    POSIX::_exit(0);
}

ok($t->wait_for(sub { IO::Socket::INET->new("127.0.0.1:$port") }, 10),
   'toy server listens');

$r = $t->http('GET', '/toy/a', port => $port);
is($r->{status}, 200, 'toy: 200');
is($r->{headers}{'x-toy'}, 'now', 'toy: its header');
is($r->{headers}{server}, 'toy-simulator', 'toy: the server name');
is($r->{body}, 'toy', 'toy: its body');

$r = $t->http('POST', '/toy/later', port => $port, body => 'x');
is($r->{status}, 202, 'toy: a later answer');

$r = $t->http('POST', '/throttledthirdparty/01.00/queuefull-1', port => $port,
              @toast);
is($r->{status}, 200, 'MPNS beside it: 200');
is($r->{headers}{'x-notificationstatus'}, 'QueueFull',
   'MPNS beside it: QueueFull');

$r = $t->http('GET', '/_sim/stats', port => $port);
is($r->{json}{toy_hits}, 2, 'stats: the service\'s own key');
is($r->{json}{requests}, 3, 'stats: the server\'s requests');

$r = $t->http('GET', '/_sim/requests', port => $port);
like($r->{body}, qr/"resumed":false,"toy":"GET","callback":false\}/,
     'requests: the services\' fields after the server\'s, in order');
like($r->{body}, qr/"resumed":false,"toy":null,"callback":false\}/,
     'requests: a field the service did not set is its default');

$r = $t->http('POST', '/_sim/script', port => $port,
              body => '{"path":"/toy/s","responses":[{"state":"toyish"}]}');
is($r->{status}, 200, 'script: a state the toy service knows');

$r = $t->http('POST', '/_sim/script', port => $port,
              body => '{"path":"/toy/s","responses":[{"state":"nope"}]}');
is($r->{status}, 400, 'script: a state no service knows');

$r = $t->http('POST', '/_sim/script', port => $port,
              body => '{"path":"/t/s","responses":[{"state":"slow10"}]}');
is($r->{status}, 200, 'script: an MPNS state');

$t->http('POST', '/_sim/reset', port => $port, body => '');
$r = $t->http('GET', '/_sim/stats', port => $port);
is($r->{json}{toy_hits}, 0, 'reset: the service\'s counter too');

kill 'TERM', $pid;
waitpid($pid, 0);
is($?, 0, 'toy server: exits 0 on SIGTERM');

$t->done;
done_testing;
