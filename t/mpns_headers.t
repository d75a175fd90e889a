#!/usr/bin/perl

# The request line and headers the module sends to MPNS for each type and
# batching class, X-MessageID, and the MPNS headers copied into the answer
# (docs/api.md "What is sent", "The answer").

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use MpnsTest qw(http_conf);

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

        location = /push450 {
            mpns_send;
            mpns_field class 450;
        }

        location = /raw {
            mpns_send raw;
            mpns_channel $arg_channel;
        }
    }

EOF_CONF

$t->run;

my $SIM = $t->sim_url;
my $CH = $t->sim_url('/throttledthirdparty/01.00/AAF');

my $UUID4 = qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}
                -[89ab][0-9a-f]{3}-[0-9a-f]{12}$/x;

# a minimal valid notification per type
my %minimal = (
    toast  => { text1 => 'Hi' },
    tile   => { title => 'T' },
    flip   => { title => 'T' },
    cycle  => { title => 'T' },
    iconic => { title => 'T' },
    raw    => { payload => 'r' },
);

my @types = qw(toast tile flip cycle iconic raw);

###############################################################################

# the [error] lines after offset $log (from log_mark)
sub errors_since { join "\n", $t->log_since('error', $_[0]) }

# sent($data, %opts): posts JSON (channel $CH unless given) and returns
# (answer, the one recorded request or undef).

sub sent {
    my ($data, %opts) = @_;

    $t->sim_reset;

    my $r = ref $data eq 'CODE'
        ? $data->()
        : $t->post_json($opts{uri} // '/push', { channel => $CH, %$data });

    my $reqs = $t->sim_requests;

    return ($r, @$reqs == 1 ? $reqs->[0] : undef, scalar @$reqs);
}

# refused($name, $data, $status, $error, $field): $data sent as by sent
# is refused (see refused in the harness)
sub refused {
    my ($name, $data, $status, $error, $field) = @_;
    $t->refused($name, $status, $error, $field, sub { (sent($data))[0] });
}

###############################################################################

# per type: target header, Content-Type, Content-Length, method

my %target = (toast => 'toast', raw => undef,
              map { $_ => 'token' } qw(tile flip cycle iconic));

for my $type (@types) {
    subtest "$type: request method, headers and length" => sub {
        my $log = $t->log_mark;
        my ($r, $req) = sent({ type => $type, %{$minimal{$type}} });

        is($r->{status}, 200, 'answer 200') or diag($r->{raw});
        ok($req, 'one notification sent') or return;

        is($req->{method}, 'POST', 'method POST');
        is($req->{hdr}{'x-windowsphone-target'}, $target{$type},
           'X-WindowsPhone-Target '
           . ($target{$type} // 'absent'));
        is($req->{hdr}{'content-length'}, length $req->{body},
           'Content-Length is the body length');

        if ($type ne 'raw') {
            is($req->{hdr}{'content-type'}, 'text/xml',
               'Content-Type text/xml');
        }

        is(errors_since($log), '', 'no [error] in the log');
    };
}

# X-NotificationClass: all 18 combinations

my %class_base = (toast => 2, raw => 3,
                  map { $_ => 1 } qw(tile flip cycle iconic));
my %class_add = (immediate => 0, 450 => 10, 900 => 20);

for my $type (@types) {
    for my $class (qw(immediate 450 900)) {
        my $want = $class_base{$type} + $class_add{$class};

        my ($r, $req) = sent({ type => $type, class => $class,
                               %{$minimal{$type}} });

        is($req && $req->{hdr}{'x-notificationclass'}, $want,
           "$type class $class sends X-NotificationClass $want");
    }
}

{
    my ($r, $req) = sent({ type => 'toast', text1 => 'Hi' });
    is($req && $req->{hdr}{'x-notificationclass'}, 2,
       'no class is immediate');

    ($r, $req) = sent({ type => 'tile', title => 'T', class => '0' });
    is($req && $req->{hdr}{'x-notificationclass'}, 1,
       'class 0 is immediate');

    ($r, $req) = sent({ type => 'raw', payload => 'r', class => 450 });
    is($req && $req->{hdr}{'x-notificationclass'}, 13,
       'class given as a JSON number');
}

refused('an unknown class is refused',
        { type => 'toast', text1 => 'Hi', class => '300' },
        400, 'invalid value', 'class');

# mpns_field class overrides the request

{
    my ($r, $req) = sent({ type => 'toast', text1 => 'Hi', class => '900' },
                         uri => '/push450');
    is($req && $req->{hdr}{'x-notificationclass'}, 12,
       'mpns_field class 450 overrides the request class for a toast');

    ($r, $req) = sent({ type => 'tile', title => 'T' }, uri => '/push450');
    is($req && $req->{hdr}{'x-notificationclass'}, 11,
       'mpns_field class 450 applies to a tile without a request class');
}

# other headers

{
    my $log = $t->log_mark;
    my ($r, $req) = sent({ type => 'toast', text1 => 'Hi' });

    is($req && $req->{hdr}{host}, '127.0.0.1:' . $t->sim_port,
       'Host is the channel host and port');
    is($req && $req->{hdr}{accept}, 'application/*',
       'Accept: application/*');
    is($req && lc $req->{hdr}{connection}, 'keep-alive',
       'Connection: keep-alive');
    is($req && $req->{version}, 'HTTP/1.1', 'HTTP/1.1');
    is(errors_since($log), '', 'no [error] for a plain toast');
}

# raw Content-Type

{
    my ($r, $req) = sent(sub {
        $t->http('POST', "/raw?channel=$CH",
                 headers => ['Content-Type' => 'application/x-foo'],
                 body => 'abc');
    });

    is($req && $req->{hdr}{'content-type'}, 'application/x-foo',
       'raw pass-through keeps the request Content-Type');
    ok($req && !exists $req->{hdr}{'x-windowsphone-target'},
       'raw pass-through sends no X-WindowsPhone-Target');
    is($req && $req->{hdr}{'x-notificationclass'}, 3,
       'raw pass-through sends class 3');

    ($r, $req) = sent(sub {
        $t->http('POST', "/raw?channel=$CH", body => 'abc');
    });

    is($req && $req->{hdr}{'content-type'}, 'text/xml',
       'raw pass-through without Content-Type sends text/xml');

    ($r, $req) = sent({ type => 'raw', payload => 'abc' });

    is($req && $req->{hdr}{'content-type'}, 'text/xml',
       'raw payload field sends text/xml, not the JSON request type');
}

# request target

for my $case (
    ['/throttledthirdparty/01.00/AAF?x=1&y=2',
     '/throttledthirdparty/01.00/AAF?x=1&y=2',
     'the channel path and query are the request target'],
    ['?x=1', '/?x=1', 'a channel with only a query gets /?query'],
    ['', '/', 'a channel without a path gets /'],
    ['/', '/', 'a channel with path / gets /'],
    ['/a%2Fb/AAF%3D%3D?q=%20', '/a%2Fb/AAF%3D%3D?q=%20',
     'percent-escapes in the channel are sent unchanged'],
  )
{
    my ($r, $req) = sent({ type => 'toast', text1 => 'Hi',
                           channel => $SIM . $case->[0] });

    is($req && $req->{target}, $case->[1], $case->[2])
        or diag($r->{raw});
}

# X-MessageID

{
    my $log = $t->log_mark;

    my ($r1, $req1) = sent({ type => 'toast', text1 => 'Hi' });
    my ($r2, $req2) = sent({ type => 'toast', text1 => 'Hi' });

    my $id1 = $req1 && $req1->{hdr}{'x-messageid'};
    my $id2 = $req2 && $req2->{hdr}{'x-messageid'};

    like($id1 // '', $UUID4,
         'X-MessageID is a fresh lower-case UUID v4 when not given');
    like($id2 // '', $UUID4, 'second X-MessageID is a UUID v4 too');
    isnt($id1, $id2, 'each request gets its own X-MessageID');
    is($r1->{json} && $r1->{json}{message_id}, $id1,
       'answer message_id is the X-MessageID sent');
    is(errors_since($log), '', 'no [error] with generated message ids');
}

{
    my $given = '0F8FAD5B-D9CB-469F-A165-70867728950E';

    my ($r, $req) = sent({ type => 'toast', text1 => 'Hi',
                           message_id => $given });

    is($req && $req->{hdr}{'x-messageid'}, lc $given,
       'a given upper-case message_id is sent lower-cased');
    is($r->{json} && $r->{json}{message_id}, lc $given,
       'the answer message_id is lower-cased too');
}

{
    my $given = '00000000-0000-0000-0000-000000000001';

    my ($r, $req) = sent({ type => 'tile', title => 'T',
                           message_id => $given });

    is($req && $req->{hdr}{'x-messageid'}, $given,
       'a given non-v4 UUID is sent as given');
}

for my $bad (['abc', 'a short string'],
             ["0f8fad5b-d9cb-469f-a165-70867728950e\r\nX-Evil: 1",
              'a UUID followed by CR LF and a header'],
             ['0f8fad5b-d9cb-469f-a165-70867728950', 'a UUID one short'],
             ['0f8fad5b-d9cb-469f-a165-70867728950e0', 'a UUID one long'],
             ['0f8fad5bd9cb469fa16570867728950e', 'a UUID without dashes'],
             ['0f8fad5b-d9cb-469f-a165-70867728950g', 'a non-hex digit'],
             ['{0f8fad5b-d9cb-469f-a165-70867728950e}', 'a braced UUID'])
{
    refused("message_id that is $bad->[1] is refused",
            { type => 'toast', text1 => 'Hi', message_id => $bad->[0] },
            400, 'invalid value', 'message_id');
}

# MPNS headers copied into the answer

{
    my $log = $t->log_mark;
    my ($r, $req) = sent({ type => 'toast', text1 => 'Hi' });

    is($r->{headers}{'x-notificationstatus'}, 'Received',
       'answer copies X-NotificationStatus');
    is($r->{headers}{'x-subscriptionstatus'}, 'Active',
       'answer copies X-SubscriptionStatus');
    is($r->{headers}{'x-deviceconnectionstatus'}, 'Connected',
       'answer copies X-DeviceConnectionStatus');
    is($r->{headers}{'x-messageid'}, $req && $req->{hdr}{'x-messageid'},
       'answer copies the echoed X-MessageID');
    is(errors_since($log), '', 'no [error] when copying the headers');
}

{
    my ($r) = sent({ type => 'tile', title => 'T',
                     channel => $t->sim_url('/t/tempdisconnected-AAF') });

    is($r->{headers}{'x-deviceconnectionstatus'}, 'TempDisconnected',
       'answer copies the device connection status MPNS sent');
    is($r->{headers}{'x-notificationstatus'}, 'Received',
       'answer copies the notification status with it');
}

{
    my ($r, $req) = sent({ type => 'toast', text1 => 'Hi',
                           channel => $t->sim_url('/t/queuefull-AAF') });

    is($r->{headers}{'x-notificationstatus'}, 'QueueFull',
       'answer copies X-NotificationStatus QueueFull');
}

{
    my ($r) = sent({ type => 'toast', text1 => 'Hi',
                     channel => $t->sim_url('/t/busy-AAF') });

    is($r->{status}, 503, 'busy MPNS: the answer has its status');
    ok(!exists $r->{headers}{'x-notificationstatus'}
       && !exists $r->{headers}{'x-subscriptionstatus'}
       && !exists $r->{headers}{'x-deviceconnectionstatus'},
       'no MPNS status headers in the answer when MPNS sent none');
}

###############################################################################

$t->done;
done_testing;

###############################################################################
