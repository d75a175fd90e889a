package MpnsSim::Conn;

# A non-blocking TCP connection of the event loop (MpnsSim::Loop): input
# and output buffers, writing, closing after the last answer without losing
# it, and the end.  The server's and the proxy's connections are subclasses
# that read and answer; this class only moves bytes.
#
# Fields: loop, fh, rbuf, wbuf (bytes read and not yet used, bytes to
# write), eof (the peer closed its side), close_after (close once wbuf is
# written), lingering (our side is shut, waiting for the peer's), waiting
# (an answer is held back: reading pauses and eof does not close yet),
# closed.

use v5.36;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Socket qw(SHUT_WR);

use constant {
    RBUF_PAUSE     => 1024 * 1024,    # stop reading while this much waits
    LINGER_SECONDS => 2,              # wait for the peer's FIN after ours
};

sub new ($class, $loop, $fh, %fields) {
    my $c = bless {
        loop => $loop, fh => $fh, rbuf => '', wbuf => '', eof => 0,
        close_after => 0, lingering => 0, waiting => 0, closed => 0,
        %fields,
    }, $class;
    $loop->add($c);
    return $c;
}

# What the loop waits for: (read, write).
sub wants ($c) {
    return (!$c->{eof}
            && !($c->{waiting} && length($c->{rbuf}) >= RBUF_PAUSE),
            $c->{wbuf} ne '');
}

sub readable ($c) { die ref($c) . " reads nothing\n" }

sub writable ($c) { $c->flush }

# Writes as much of the output buffer as the socket takes; once it is all
# written, starts the close asked for, or ends a connection the peer has
# left.
sub flush ($c) {
    while (!$c->{closed} && $c->{wbuf} ne '') {
        my $n = syswrite($c->{fh}, $c->{wbuf});
        if (!defined $n) {
            return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            $c->close;                  # EPIPE, ECONNRESET: peer is gone
            return;
        }
        substr($c->{wbuf}, 0, $n, '');
    }
    return if $c->{closed} || $c->{wbuf} ne '';
    if ($c->{close_after} && !$c->{lingering}) {
        $c->linger;
    } elsif ($c->{eof} && !$c->{waiting}) {
        $c->close;
    }
}

# Closes our side after the last answer but keeps reading until the peer's
# FIN (or a short timeout): closing with unread input would send a TCP RST
# that can destroy the answer before the client reads it.
sub linger ($c) {
    $c->{lingering} = 1;
    $c->{rbuf} = '';
    $c->shutdown_write;
    $c->{loop}->add_timer(LINGER_SECONDS, sub { $c->close });
}

sub shutdown_write ($c) {
    shutdown($c->{fh}, SHUT_WR);
}

# Forgets the connection; timers holding it see {closed} and do nothing.
sub close ($c) {
    return if $c->{closed};
    $c->{closed} = 1;
    $c->{loop}->remove($c);
    CORE::close $c->{fh};
    $c->closed;
}

# Subclasses let go of what the connection held.
sub closed ($c) {}

1;
