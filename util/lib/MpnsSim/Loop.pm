package MpnsSim::Loop;

# The simulator's one event loop: select(2) over listening sockets and other
# watched handles (the DNS socket), the connections (MpnsSim::Conn objects,
# which say what they wait for and handle what comes), and a timer list for
# delayed answers, so that a slow or silent peer never blocks another.

use v5.36;

use IO::Select;
use IO::Socket::IP;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes ();

sub new ($class) {
    return bless { conns => {}, watched => {}, timers => [], stop => 0 },
        $class;
}

sub now () { return Time::HiRes::time() }

sub add ($self, $c) { $self->{conns}{"$c->{fh}"} = $c }

sub remove ($self, $c) { delete $self->{conns}{"$c->{fh}"} }

sub conns ($self) { return values %{ $self->{conns} } }

# Runs $cb when $fh is readable.
sub watch ($self, $fh, $cb) { $self->{watched}{"$fh"} = [$fh, $cb] }

# Schedules $cb to run after $delay seconds.
sub add_timer ($self, $delay, $cb) {
    push @{ $self->{timers} }, [now() + $delay, $cb];
}

# Makes run() return after the current round (from a signal handler).
sub stop ($self) { $self->{stop} = 1 }

# Binds a TCP listener on exactly HOST:PORT ($text is the address as
# given, for the error), or dies.  Every connection accepted on it is made
# non-blocking, with TCP_NODELAY, and handed to $on_accept.
sub listen ($self, $host, $port, $text, $on_accept) {
    my $l = IO::Socket::IP->new(
        LocalHost => $host, LocalPort => $port, Proto => 'tcp',
        Listen => 128, ReuseAddr => 1,
    ) or die "cannot listen on $text: " . ($@ || $!) . "\n";
    $l->blocking(0);
    $self->watch($l, sub {
        while (my $fh = $l->accept) {
            $fh->blocking(0);
            setsockopt($fh, IPPROTO_TCP, TCP_NODELAY, 1);
            $on_accept->($fh);
        }
    });
    return $l;
}

# Runs due timers; returns how long select may sleep.
sub run_timers ($self) {
    my $t = now();
    my @due = grep { $_->[0] <= $t } @{ $self->{timers} };
    $self->{timers} = [ grep { $_->[0] > $t } @{ $self->{timers} } ];
    $_->[1]->() for sort { $a->[0] <=> $b->[0] } @due;
    return 1 unless @{ $self->{timers} };
    my $next = (sort { $a <=> $b } map { $_->[0] } @{ $self->{timers} })[0];
    my $wait = $next - now();
    return $wait < 0 ? 0 : $wait < 1 ? $wait : 1;
}

# Timers, then select, then writes before reads; until stop().  Then
# every connection and watched handle is closed.
sub run ($self) {
    while (!$self->{stop}) {
        my $timeout = $self->run_timers;
        last if $self->{stop};
        my $rsel = IO::Select->new(map { $_->[0] }
                                   values %{ $self->{watched} });
        my $wsel = IO::Select->new();
        for my $c (values %{ $self->{conns} }) {
            my ($r, $w) = $c->wants;
            $rsel->add($c->{fh}) if $r;
            $wsel->add($c->{fh}) if $w;
        }
        my ($readable, $writable) =
            IO::Select->select($rsel, $wsel, undef, $timeout);
        next unless $readable || $writable;
        for my $fh (@{ $writable // [] }) {
            my $c = $self->{conns}{"$fh"} or next;
            $c->writable;
        }
        for my $fh (@{ $readable // [] }) {
            if (my $w = $self->{watched}{"$fh"}) {
                $w->[1]->();
                next;
            }
            my $c = $self->{conns}{"$fh"} or next;
            $c->readable;
        }
    }
    $_->close for values %{ $self->{conns} };
    close $_->[0] for values %{ $self->{watched} };
}

1;
