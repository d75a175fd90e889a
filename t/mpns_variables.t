#!/usr/bin/perl

# The $mpns_* variables (docs/directives.md, Embedded Variables): their
# values in log_format, add_header and map for a delivered send, an expired
# channel, a read timeout and a refused request, and their freshness across
# requests on one keep-alive client connection.

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

    log_format mpns '$mpns_status|$mpns_notification_status|'
                    '$mpns_subscription_status|'
                    '$mpns_device_connection_status|$mpns_message_id|'
                    '$mpns_outcome|$mpns_action|$mpns_attempts|'
                    '$mpns_channel|$mpns_response_time|$mpns_error';

    map $mpns_outcome $delete_it {
        expired  yes;
        default  no;
    }

    server {
        listen       127.0.0.1:%%PORT%%;
        server_name  localhost;

        access_log %%TESTDIR%%/mpns.log mpns;

        location = /push {
            mpns_send;

            add_header X-V-Status $mpns_status always;
            add_header X-V-Notification $mpns_notification_status always;
            add_header X-V-Subscription $mpns_subscription_status always;
            add_header X-V-Device $mpns_device_connection_status always;
            add_header X-V-Message-Id $mpns_message_id always;
            add_header X-Outcome $mpns_outcome always;
            add_header X-V-Action $mpns_action always;
            add_header X-V-Attempts $mpns_attempts always;
            add_header X-V-Channel $mpns_channel always;
            add_header X-V-Response-Time $mpns_response_time always;
            add_header X-V-Error $mpns_error always;
            add_header X-Delete $delete_it always;
        }

        location = /push-timeout {
            mpns_send;
            mpns_read_timeout 300ms;

            add_header X-Outcome $mpns_outcome always;
            add_header X-V-Status $mpns_status always;
            add_header X-V-Response-Time $mpns_response_time always;
            add_header X-Delete $delete_it always;
        }
    }

EOF_CONF

$t->run;

# the variables in log_format order, with the add_header carrying each
my @VARS = (
    [status => 'x-v-status'],
    [notification_status => 'x-v-notification'],
    [subscription_status => 'x-v-subscription'],
    [device_connection_status => 'x-v-device'],
    [message_id => 'x-v-message-id'],
    [outcome => 'x-outcome'],
    [action => 'x-v-action'],
    [attempts => 'x-v-attempts'],
    [channel => 'x-v-channel'],
    [response_time => 'x-v-response-time'],
    [error => 'x-v-error'],
);

my $UUID4 = qr/^ [0-9a-f]{8} - [0-9a-f]{4} - 4[0-9a-f]{3}
                - [89ab][0-9a-f]{3} - [0-9a-f]{12} $/x;
my $TIME = qr/^\d+\.\d{3}$/;

my $lines = 0;              # access log lines seen so far
my ($r, $log, $ch, $reqs);

###############################################################################

# a delivered send, with the caller's message id in upper case

$t->sim_reset;
$ch = $t->sim_url('/t/active-1');

$r = $t->post_json('/push', { channel => $ch, type => 'toast', text1 => 'x',
                              message_id =>
                                  'ABCDEF01-2345-4678-9ABC-DEF012345678' });
$log = next_log();

is($r->{status}, 200, 'delivered: answer status 200');

check_vars('delivered', $r, $log, {
    status => '200',
    notification_status => 'Received',
    subscription_status => 'Active',
    device_connection_status => 'Connected',
    message_id => 'abcdef01-2345-4678-9abc-def012345678',
    outcome => 'delivered',
    action => 'none',
    attempts => '1',
    channel => $ch,
    response_time => $TIME,
    error => undef,
});

is($r->{headers}{'x-delete'}, 'no', 'delivered: map of $mpns_outcome');

$reqs = $t->sim_requests;
is($reqs->[0]{hdr}{'x-messageid'} // '',
   'abcdef01-2345-4678-9abc-def012345678',
   'delivered: $mpns_message_id is the X-MessageID sent');

# an expired channel, with a fresh message id

$t->sim_reset;
$ch = $t->sim_url('/t/expired-1');

$r = $t->post_json('/push', { channel => $ch, type => 'toast',
                              text1 => 'x' });
$log = next_log();
$reqs = $t->sim_requests;

is($r->{status}, 404, 'expired: answer status 404');

my $sent = $reqs->[0]{hdr}{'x-messageid'} // '';
like($sent, $UUID4, 'expired: a fresh random v4 UUID is sent');

check_vars('expired', $r, $log, {
    status => '404',
    notification_status => 'Dropped',
    subscription_status => 'Expired',
    device_connection_status => 'Connected',
    message_id => $sent,
    outcome => 'expired',
    action => 'delete_channel',
    attempts => '1',
    channel => $ch,
    response_time => $TIME,
    error => undef,
});

is($r->{headers}{'x-delete'}, 'yes', 'expired: map of $mpns_outcome');

# a read timeout: no MPNS status at all

$t->sim_reset;
$ch = $t->sim_url('/t/silent-1');

$r = $t->post_json('/push-timeout', { channel => $ch, type => 'toast',
                                      text1 => 'x' });
$log = next_log();
$reqs = $t->sim_requests;

is($r->{status}, 504, 'timeout: answer status 504');

$sent = $reqs->[0]{hdr}{'x-messageid'} // '';

check_vars('timeout', undef, $log, {
    status => undef,
    notification_status => undef,
    subscription_status => undef,
    device_connection_status => undef,
    message_id => $sent,
    outcome => 'timeout',
    action => 'retry',
    attempts => '1',
    channel => $ch,
    response_time => qr/^0\.3\d\d$/,
    error => undef,
});

is($r->{headers}{'x-outcome'}, 'timeout', 'timeout: $mpns_outcome header');
ok(!exists $r->{headers}{'x-v-status'},
   'timeout: no $mpns_status header (not found)');
like($r->{headers}{'x-v-response-time'} // '', qr/^0\.3\d\d$/,
     'timeout: $mpns_response_time header');
is($r->{headers}{'x-delete'}, 'no', 'timeout: map of $mpns_outcome');

# a refused request: nothing is sent

$t->sim_reset;

$r = $t->post_json('/push', { type => 'toast', text1 => 'x' });
$log = next_log();

is($r->{status}, 400, 'refused: answer status 400');
is($r->{json} && $r->{json}{error}, 'missing field',
   'refused: error in the answer');

check_vars('refused', $r, $log, {
    status => undef,
    notification_status => undef,
    subscription_status => undef,
    device_connection_status => undef,
    message_id => undef,
    outcome => undef,
    action => undef,
    attempts => undef,
    channel => undef,
    response_time => undef,
    error => 'missing field',
});

is($r->{headers}{'x-delete'}, 'no', 'refused: map of empty $mpns_outcome');
is(scalar @{$t->sim_requests}, 0, 'refused: nothing reached MPNS');

###############################################################################

# several requests on one keep-alive client connection: each request's
# variables are its own

$t->sim_reset;

my @seq = (
    [expired => { channel => $t->sim_url('/t/expired-2'), type => 'toast',
                  text1 => 'x' }],
    [busy => { channel => $t->sim_url('/t/busy-2'), type => 'toast',
               text1 => 'x' }],
    [refused => { type => 'toast', text1 => 'x' }],
    [delivered => { channel => $t->sim_url('/t/active-2'), type => 'toast',
                    text1 => 'x' }],
);

my @answers = keepalive_requests(map { $_->[1] } @seq);

is(scalar(grep { defined $_->{status} } @answers), scalar @seq,
   'keep-alive: every request answered on one connection');

my @logs = map { next_log() } @seq;
$reqs = $t->sim_requests;
my @ids = map { $_->{hdr}{'x-messageid'} // '' } @$reqs;

is(scalar @ids, 3, 'keep-alive: three notifications reached MPNS');

my %ka = (
    expired => {
        status => '404', notification_status => 'Dropped',
        subscription_status => 'Expired',
        device_connection_status => 'Connected', message_id => $ids[0],
        outcome => 'expired', action => 'delete_channel', attempts => '1',
        channel => $seq[0][1]{channel}, response_time => $TIME,
        error => undef,
    },
    busy => {
        status => '503', notification_status => undef,
        subscription_status => undef, device_connection_status => undef,
        message_id => $ids[1], outcome => 'unavailable', action => 'retry',
        attempts => '1', channel => $seq[1][1]{channel},
        response_time => $TIME, error => undef,
    },
    refused => {
        status => undef, notification_status => undef,
        subscription_status => undef, device_connection_status => undef,
        message_id => undef, outcome => undef, action => undef,
        attempts => undef, channel => undef, response_time => undef,
        error => 'missing field',
    },
    delivered => {
        status => '200', notification_status => 'Received',
        subscription_status => 'Active',
        device_connection_status => 'Connected', message_id => $ids[2],
        outcome => 'delivered', action => 'none', attempts => '1',
        channel => $seq[3][1]{channel}, response_time => $TIME,
        error => undef,
    },
);

my %delete = (expired => 'yes', busy => 'no', refused => 'no',
              delivered => 'no');

for my $i (0 .. $#seq) {
    my $name = "keep-alive $seq[$i][0]";
    check_vars($name, $answers[$i], $logs[$i], $ka{$seq[$i][0]});
    is($answers[$i]{headers}{'x-delete'}, $delete{$seq[$i][0]},
       "$name: map of \$mpns_outcome");
}

isnt($ids[0], $ids[1], 'keep-alive: each send has its own message id');

###############################################################################

is(join("\n", grep { !/mpns server timed out/ }
              $t->error_log_lines('error')),
   '', 'no [error] besides the timeout');

$t->done;
done_testing;

###############################################################################

# Waits up to 5 s for access log line number $lines + 1 and returns it
# split into the variables' values (undef for "-").
sub next_log {
    my @l;

    $t->wait_for(sub { (@l = $t->access_log_lines('mpns.log')) > $lines }, 5)
        or return { raw => '' };

    my $line = $l[$lines++];
    my @v = split /\|/, $line, -1;

    return { raw => $line,
             map { $VARS[$_][0] => ($v[$_] // '') eq '-' ? undef : $v[$_] }
                 0 .. $#VARS };
}

# For each variable: the access log value and (with an answer) the
# add_header value, undef meaning not found ("-" in the log, no header).
# A Regexp wants a match.
sub check_vars {
    my ($name, $r, $log, $want) = @_;

    for my $v (@VARS) {
        my ($var, $hdr) = @$v;
        my $w = $want->{$var};

        my @got = (['log', $log->{$var}]);
        push @got, ['header', $r->{headers}{$hdr}] if $r;

        for my $g (@got) {
            my ($where, $got) = @$g;
            my $test = "$name: \$mpns_$var in the $where";

            if (!defined $w) {
                ok(!defined $got, "$test is not found")
                    or diag("got \"$got\"; log line: $log->{raw}");

            } elsif (ref $w eq 'Regexp') {
                like($got // '', $w, $test)
                    or diag("log line: $log->{raw}");

            } else {
                is($got, $w, $test) or diag("log line: $log->{raw}");
            }
        }
    }
}

# Sends one JSON POST per element of @bodies on one client connection
# (keep-alive, the last one with "Connection: close"), each after the
# previous answer; returns the parsed answers.
sub keepalive_requests {
    my (@bodies) = @_;

    my $s = $t->http_connect;
    my $json = JSON::PP->new->utf8->canonical;
    my @answers;

    for my $i (0 .. $#bodies) {
        my $conn = $i == $#bodies ? 'close' : 'keep-alive';

        $t->http_start('POST', '/push', socket => $s,
                       body => $json->encode($bodies[$i]),
                       headers => ['Connection' => $conn,
                                   'Content-Type' => 'application/json']);

        push @answers, $t->http_response($s);
        last if $answers[-1]{error};
    }

    close $s;

    return @answers;
}

###############################################################################
