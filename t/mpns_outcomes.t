#!/usr/bin/perl

# The outcome table of docs/api.md, row by row: for every answer MPNS can
# give (the simulator's channel states and scripted answers) the status of
# nginx's answer, the JSON body, the copied MPNS headers and the error log;
# then the transport outcomes (reset, invalid status line, read timeout,
# connection refused).

use strict;
use warnings;

use Test::More;
use JSON::PP;

use lib 't/lib';
use MpnsTest qw(http_conf);

my $t = MpnsTest->new;

$t->sim_start;

$t->write_conf(http_conf(<<'EOF_CONF'));

    mpns_allowed_hosts ^127\.0\.0\.1$;
    mpns_retries 0;    # retries: t/mpns_retries.t

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        location = /push {
            mpns_send;
        }

        location = /push-timeout {
            mpns_send;
            mpns_read_timeout 300ms;
        }
    }

EOF_CONF

$t->run;

my $sim_port = $t->sim_port;
my $json = JSON::PP->new->canonical->allow_nonref;

my @MPNS_HEADERS = qw(X-NotificationStatus X-SubscriptionStatus
                      X-DeviceConnectionStatus X-MessageID);

my @FIELDS = qw(channel status notification_status subscription_status
                device_connection_status message_id outcome action
                retry_after attempts time_ms);

my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

# Each row: name, the channel path, an optional script for that path, the
# MPNS status headers the simulator sends (X-MessageID is echoed whenever
# one of them is sent), and the expected answer (status, outcome, action,
# retry_after).

my @rows = (

    # the simulator's channel states

    { name => 'active', path => '/t/active-1',
      mpns => [200, 'Received', 'Active', 'Connected'],
      want => ['delivered', 'none', undef] },

    { name => 'tempdisconnected', path => '/t/tempdisconnected-1',
      mpns => [200, 'Received', 'Active', 'TempDisconnected'],
      want => ['delivered', 'none', undef] },

    { name => 'disconnected', path => '/t/disconnected-1',
      mpns => [200, 'Received', 'Active', 'Disconnected'],
      want => ['delivered', 'none', undef] },

    { name => 'queuefull', path => '/t/queuefull-1',
      mpns => [200, 'QueueFull', 'Active', 'Connected'],
      want => ['queue_full', 'retry', 60] },

    { name => 'suppressed', path => '/t/suppressed-1',
      mpns => [200, 'Suppressed', 'Active', 'Connected'],
      want => ['suppressed', 'none', undef] },

    { name => 'dropped', path => '/t/dropped-1',
      mpns => [200, 'Dropped', 'Active', 'Connected'],
      want => ['dropped', 'none', undef] },

    { name => 'expired', path => '/t/expired-1',
      mpns => [404, 'Dropped', 'Expired', 'Connected'],
      want => ['expired', 'delete_channel', undef] },

    { name => 'inactive', path => '/t/inactive-1',
      mpns => [412, 'Dropped', undef, 'Inactive'],
      want => ['device_inactive', 'retry', 3660] },

    { name => 'throttled', path => '/t/throttled0-1',
      mpns => [406, 'Dropped', 'Active', 'Connected'],
      want => ['throttled', 'retry', 3600] },

    { name => 'busy', path => '/t/busy-1',
      mpns => [503],
      want => ['unavailable', 'retry', 60] },

    { name => 'unauthorized', path => '/t/unauthorized-1',
      mpns => [401],
      want => ['unauthorized', 'check_certificate', undef] },

    { name => 'forbidden', path => '/t/forbidden-1',
      mpns => [403],
      want => ['forbidden', 'check_certificate', undef] },

    # scripted answers

    { name => 'scripted 400', path => '/s/400', script => 1,
      mpns => [400],
      want => ['bad_request', 'fix_request', undef] },

    { name => 'scripted 404 without headers', path => '/s/404', script => 1,
      mpns => [404],
      want => ['expired', 'delete_channel', undef] },

    { name => 'scripted 405', path => '/s/405', script => 1,
      mpns => [405],
      want => ['method_not_allowed', 'fix_request', undef] },

    { name => 'scripted 500', path => '/s/500', script => 1,
      mpns => [500],
      want => ['unavailable', 'retry', 60] },

    { name => 'scripted 200 without MPNS headers', path => '/s/200-bare',
      script => 1,
      mpns => [200],
      want => ['delivered', 'none', undef] },

    { name => 'scripted 200 with only SubscriptionStatus Expired',
      path => '/s/200-expired', script => 1,
      mpns => [200, undef, 'Expired', undef],
      want => ['expired', 'delete_channel', undef] },

    { name => 'scripted 200 Received with SubscriptionStatus Expired',
      path => '/s/200-received-expired', script => 1,
      mpns => [200, 'Received', 'Expired', 'Connected'],
      want => ['expired', 'delete_channel', undef] },

    { name => 'scripted 412 with SubscriptionStatus Expired',
      path => '/s/412-expired', script => 1,
      mpns => [412, 'Dropped', 'Expired', 'Inactive'],
      want => ['expired', 'delete_channel', undef] },

    { name => 'scripted 200 lower-case received',
      path => '/s/200-lower-received', script => 1,
      mpns => [200, 'received', 'active', 'connected'],
      want => ['delivered', 'none', undef] },

    { name => 'scripted 200 lower-case queuefull',
      path => '/s/200-lower-queuefull', script => 1,
      mpns => [200, 'queuefull', 'active', 'connected'],
      want => ['queue_full', 'retry', 60] },

    { name => 'scripted 200 upper-case SUPPRESSED',
      path => '/s/200-upper-suppressed', script => 1,
      mpns => [200, 'SUPPRESSED', 'ACTIVE', 'CONNECTED'],
      want => ['suppressed', 'none', undef] },

    { name => 'scripted 200 lower-case expired',
      path => '/s/200-lower-expired', script => 1,
      mpns => [200, 'dropped', 'expired', 'connected'],
      want => ['expired', 'delete_channel', undef] },

    { name => 'scripted 200 lower-case header names',
      path => '/s/200-lower-names', script => 1, lower_names => 1,
      mpns => [200, 'QueueFull', 'Active', 'Connected'],
      want => ['queue_full', 'retry', 60] },

    { name => 'scripted 412 Disconnected',
      path => '/s/412-disconnected', script => 1,
      mpns => [412, 'Dropped', undef, 'Disconnected'],
      want => ['device_inactive', 'retry', 3660] },
);

for my $row (@rows) {
    my ($code, @st) = @{$row->{mpns}};
    my ($outcome, $action, $retry_after) = @{$row->{want}};
    my $name = $row->{name};

    $t->sim_reset;

    if ($row->{script}) {
        my %h;
        my @names = @MPNS_HEADERS[0 .. 2];
        @names = map { lc } @names if $row->{lower_names};
        for my $i (0 .. 2) {
            $h{$names[$i]} = $st[$i] if defined $st[$i];
        }
        $t->sim_script($row->{path}, [{ status => $code, headers => \%h }]);
    }

    my $channel = $t->sim_url($row->{path});
    my $log_before = $t->log_mark;

    my $r = $t->post_json('/push',
                          { channel => $channel, type => 'toast',
                            text1 => 'x' });

    my $reqs = $t->sim_requests;
    my $sent_id = @$reqs ? $reqs->[0]{hdr}{'x-messageid'} : undef;
    my $j = $r->{json} // {};

    # any X-*Status header makes MPNS echo X-MessageID
    my $has_mpns = grep { defined } @st;

    is($r->{status}, $code, "$name: answer status is MPNS's $code");
    like($r->{headers}{'content-type'} // '', qr{^application/json(;|$)},
         "$name: Content-Type application/json");

    is(scalar @$reqs, 1, "$name: one request reached MPNS");

    is(join(',', sort keys %$j), join(',', sort @FIELDS),
       "$name: answer has exactly the documented fields");

    is($json->encode({ map { $_ => $j->{$_} }
                       qw(status notification_status subscription_status
                          device_connection_status) }),
       $json->encode({ status => $code,
                       notification_status => $st[0],
                       subscription_status => $st[1],
                       device_connection_status => $st[2] }),
       "$name: status and MPNS statuses in the answer");

    is($json->encode({ map { $_ => $j->{$_} }
                       qw(outcome action retry_after) }),
       $json->encode({ outcome => $outcome, action => $action,
                       retry_after => $retry_after }),
       "$name: outcome $outcome, action $action");

    is($json->encode($j->{attempts}), '1', "$name: attempts is 1");
    like($json->encode($j->{time_ms}), qr/^\d+$/,
         "$name: time_ms is a non-negative integer");

    ok(defined $sent_id && $sent_id =~ $UUID
       && defined $j->{message_id} && $j->{message_id} eq $sent_id,
       "$name: message_id is the X-MessageID MPNS got")
        or diag("sent " . ($sent_id // 'none') . ", answered "
                . ($j->{message_id} // 'null'));

    is($j->{channel}, $channel, "$name: channel is echoed");

    my %want_h = (
        'x-notificationstatus' => $st[0],
        'x-subscriptionstatus' => $st[1],
        'x-deviceconnectionstatus' => $st[2],
        'x-messageid' => $has_mpns ? $sent_id : undef,
    );

    is($json->encode(copied_headers($r)), $json->encode(\%want_h),
       $has_mpns ? "$name: MPNS headers copied exactly"
                 : "$name: no MPNS headers in the answer");

    is(join("\n", new_errors($log_before)), '', "$name: no [error] logged");
}

# transport outcomes: no usable answer

my @transport = (
    { name => 'reset', path => '/t/reset-1',
      log => 'mpns server prematurely closed connection' },
    { name => 'garbage', path => '/t/garbage-1',
      log => 'mpns server sent invalid status line' },
);

for my $row (@transport) {
    my $name = $row->{name};

    $t->sim_reset;

    my $channel = $t->sim_url($row->{path});
    my $log_before = $t->log_mark;

    my $r = $t->post_json('/push',
                          { channel => $channel, type => 'toast',
                            text1 => 'x' });

    my $reqs = $t->sim_requests;

    check_no_answer($r, $name, 502, 'transport_error', $channel,
                    @$reqs ? $reqs->[0]{hdr}{'x-messageid'} : undef);

    my $re = qr/\[error\] \d+#\d+: \*\d+ \Q$row->{log}\E\b.*/
             . qr/, mpns: "127\.0\.0\.1:$sim_port"$/;
    ok(wait_error($log_before, $re), "$name: error log line")
        or diag(join "\n", new_errors($log_before));
}

# a read timeout

{
    my $name = 'silent, read timeout 300ms';

    $t->sim_reset;

    my $channel = $t->sim_url('/t/silent-1');
    my $log_before = $t->log_mark;

    my $r = $t->post_json('/push-timeout',
                          { channel => $channel, type => 'toast',
                            text1 => 'x' });

    my $reqs = $t->sim_requests;

    check_no_answer($r, $name, 504, 'timeout', $channel,
                    @$reqs ? $reqs->[0]{hdr}{'x-messageid'} : undef);

    my $ms = $r->{json} ? $r->{json}{time_ms} // -1 : -1;
    ok($ms >= 290 && $ms < 5000, "$name: time_ms covers the timeout")
        or diag("time_ms $ms");

    my $re = qr/\[error\] \d+#\d+: \*\d+ mpns server timed out\b.*/
             . qr/, mpns: "127\.0\.0\.1:$sim_port"$/;
    ok(wait_error($log_before, $re), "$name: error log line")
        or diag(join "\n", new_errors($log_before));
}

# connection refused: a port handed out to this test (see port in the
# harness) that nobody listens on

{
    my $name = 'connection refused';

    my $port = $t->port('refused');

    my $channel = "http://127.0.0.1:$port/t/active-1";
    my $log_before = $t->log_mark;

    my $r = $t->post_json('/push',
                          { channel => $channel, type => 'toast',
                            text1 => 'x' });

    check_no_answer($r, $name, 502, 'transport_error', $channel, undef);

    my $re = qr/\[error\] \d+#\d+: \*\d+ .*\(111: Connection refused\)/
             . qr/.*, mpns: "127\.0\.0\.1:$port"$/;
    ok(wait_error($log_before, $re), "$name: error log line")
        or diag(join "\n", new_errors($log_before));
}

$t->done;
done_testing;

###############################################################################

# The four MPNS headers of an answer, lower-case name => value (undef when
# absent, a list when repeated).
sub copied_headers {
    my ($r) = @_;

    my %h = map { lc($_) => undef } @MPNS_HEADERS;

    for my $pair (@{$r->{header_list}}) {
        my $n = lc $pair->[0];
        next if !exists $h{$n};
        $h{$n} = defined $h{$n} ? [ref $h{$n} ? @{$h{$n}} : $h{$n},
                                   $pair->[1]]
                                : $pair->[1];
    }

    return \%h;
}

# Assertions for an answer without a usable MPNS answer (502, 504).
sub check_no_answer {
    my ($r, $name, $code, $outcome, $channel, $sent_id) = @_;

    my $j = $r->{json} // {};

    is($r->{status}, $code, "$name: answer status $code");
    like($r->{headers}{'content-type'} // '', qr{^application/json(;|$)},
         "$name: Content-Type application/json");

    is(join(',', sort keys %$j), join(',', sort @FIELDS),
       "$name: answer has exactly the documented fields");

    is($json->encode({ map { $_ => $j->{$_} }
                       qw(status notification_status subscription_status
                          device_connection_status) }),
       $json->encode({ status => undef, notification_status => undef,
                       subscription_status => undef,
                       device_connection_status => undef }),
       "$name: status and MPNS statuses are null");

    is($json->encode({ map { $_ => $j->{$_} }
                       qw(outcome action retry_after) }),
       $json->encode({ outcome => $outcome, action => 'retry',
                       retry_after => 60 }),
       "$name: outcome $outcome, action retry, retry_after 60");

    is($json->encode($j->{attempts}), '1', "$name: attempts is 1");
    like($json->encode($j->{time_ms}), qr/^\d+$/,
         "$name: time_ms is a non-negative integer");

    if (defined $sent_id) {
        is($j->{message_id}, $sent_id,
           "$name: message_id is the X-MessageID MPNS got");
    } else {
        like($j->{message_id} // '', $UUID, "$name: message_id is a UUID");
    }

    is($j->{channel}, $channel, "$name: channel is echoed");

    is($json->encode(copied_headers($r)),
       $json->encode({ map { lc($_) => undef } @MPNS_HEADERS }),
       "$name: no MPNS headers in the answer");
}

# [error] lines written after offset $from of error.log.
sub new_errors { $t->log_since('error', $_[0]) }

# Waits up to 2 s for an [error] line after $from matching $re.
sub wait_error {
    my ($from, $re) = @_;
    return $t->wait_for(sub { grep { $_ =~ $re } new_errors($from) }, 2);
}

###############################################################################
