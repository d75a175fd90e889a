package MpnsSim::Dns;

# A tiny UDP DNS responder on loopback, served by the event loop, one
# datagram at a time: every standard query for an A record is answered
# with one address (names whose first label is "nxdomain" with NXDOMAIN),
# so a client can be pointed at the simulator by name.  It only ever
# replies to the source of a query, and counts the queries per name.

use v5.36;

use Errno qw(EINTR);
use IO::Socket::INET;

use MpnsSim::Log qw(note debug);

# RFC 1035 4.1: header flag bits, record types and classes, RCODEs.
use constant {
    DNS_QR => 0x8000, DNS_OPCODE => 0x7800, DNS_AA => 0x0400,
    DNS_RD => 0x0100, DNS_RA => 0x0080,
    DNS_TYPE_A => 1, DNS_CLASS_IN => 1,
    DNS_NOERROR => 0, DNS_NXDOMAIN => 3,
    DNS_MAX_PACKET => 65535,            # largest UDP datagram read
    DNS_BURST      => 64,               # datagrams handled per wake-up
    DNS_TTL        => 1,                # TTL of the A records, seconds
};

# new(loop => MpnsSim::Loop, address => 'a.b.c.d' every A record points to)
sub new ($class, %o) {
    return bless { loop => $o{loop}, sock => undef,
                   rdata => pack('C4', split /\./, $o{address}),
                   queries => 0, names => {} }, $class;
}

# Binds HOST:PORT (UDP; $text is the address as given, for the error) and
# answers there from the event loop; dies when it cannot.
sub listen ($self, $host, $port, $text) {
    my $sock = IO::Socket::INET->new(
        LocalAddr => $host, LocalPort => $port, Proto => 'udp',
    ) or die "cannot answer DNS on $text: " . ($@ || $!) . "\n";
    $sock->blocking(0);
    $self->{sock} = $sock;
    $self->{loop}->watch($sock, sub { $self->readable });
    note('answering DNS on ' . $sock->sockhost . ':' . $sock->sockport
         . ' (udp)');
}

sub stats ($self) {
    return { dns_queries => $self->{queries} + 0,
             dns_names => { %{ $self->{names} } } };
}

sub reset ($self) {
    $self->{queries} = 0;
    $self->{names} = {};
}

# Answers the datagrams waiting on the socket, a bounded number per
# wake-up so that a flood cannot starve the HTTP connections.  Replies go
# only to the address a query came from; a reply the socket cannot take
# is dropped, as UDP allows.
sub readable ($self) {
    my $sock = $self->{sock};
    for (1 .. DNS_BURST) {
        my $peer = recv($sock, my $packet, DNS_MAX_PACKET, 0);
        if (!defined $peer) {
            next if $! == EINTR;
            return;                     # EAGAIN: drained; else retry later
        }
        next if $peer eq '';
        my $reply = $self->reply($packet) // next;
        send($sock, $reply, 0, $peer);
    }
}

# Builds the reply to one datagram, counting it; undef (not counted) when
# it is not a standard query with exactly one well-formed question.
sub reply ($self, $packet) {
    return undef if length($packet) < 12;
    my ($id, $flags, $qdcount) = unpack 'n n n', $packet;
    return undef if $flags & (DNS_QR | DNS_OPCODE) || $qdcount != 1;

    # QNAME as plain labels (a compression pointer is malformed here), then
    # QTYPE and QCLASS.  Anything after the question is ignored.
    my $pos = 12;
    my @labels;
    while (1) {
        return undef if $pos >= length $packet;
        my $len = ord substr($packet, $pos++, 1);
        last if $len == 0;
        return undef if $len > 63 || $pos + $len > length $packet;
        push @labels, substr($packet, $pos, $len);
        $pos += $len;
    }
    return undef if $pos - 12 > 255 || $pos + 4 > length $packet;
    my ($qtype, $qclass) = unpack 'n n', substr($packet, $pos, 4);
    my $question = substr($packet, 12, $pos + 4 - 12);

    my $name = name_text(@labels);
    $self->{queries}++;
    $self->{names}{$name}++;

    my $rdata = $self->{rdata};
    my ($rcode, $answer) = (DNS_NOERROR, '');
    if (@labels && ($labels[0] =~ tr/A-Z/a-z/r) eq 'nxdomain') {
        $rcode = DNS_NXDOMAIN;
    } elsif ($qtype == DNS_TYPE_A && $qclass == DNS_CLASS_IN) {
        # The owner name points back to the question's name (offset 12).
        $answer = pack('n n n N n', 0xC00C, DNS_TYPE_A, DNS_CLASS_IN, DNS_TTL,
                       length $rdata) . $rdata;
    }
    debug(sprintf 'dns %s type %d class %d -> %s', $name, $qtype, $qclass,
          $rcode ? 'NXDOMAIN'
          : $answer ne '' ? 'A ' . join('.', unpack 'C4', $rdata)
          : 'no records');
    my $rflags = DNS_QR | DNS_AA | ($flags & DNS_RD) | DNS_RA | $rcode;
    return pack('n6', $id, $rflags, 1, ($answer ne '' ? 1 : 0), 0, 0)
        . $question . $answer;
}

# A query name for the statistics: lower case, labels joined by dots, no
# final dot ("." for the root); bytes other than a-z, 0-9, "-" and "_" are
# written as \DDD (decimal).
sub name_text (@labels) {
    return '.' unless @labels;
    return join '.', map {
        my $l = tr/A-Z/a-z/r;
        $l =~ s/([^a-z0-9_-])/sprintf '\\%03d', ord $1/ge;
        $l;
    } @labels;
}

1;
