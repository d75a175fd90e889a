package MpnsSim::Http;

# HTTP/1.1 pieces shared by the server and the forward proxy: limits, the
# token grammar, reason phrases, dates, header look-ups and keep-alive.

use v5.36;

use Exporter qw(import);

our @EXPORT_OK = qw(HEADER_LIMIT BODY_HARD_CAP READ_CHUNK CONTINUE
                    $TOKEN_RE reason http_date header_values keep_alive);

use constant {
    HEADER_LIMIT  => 8192,                # request line + header block, bytes
    BODY_HARD_CAP => 16 * 1024 * 1024,    # larger bodies: 413 and close
    READ_CHUNK    => 65536,
    CONTINUE      => "HTTP/1.1 100 Continue\r\n\r\n",
};

our $TOKEN_RE = qr/[!#\$%&'*+.^_`|~0-9A-Za-z-]+/;

my %REASON = (
    100 => 'Continue', 200 => 'OK', 201 => 'Created', 202 => 'Accepted',
    204 => 'No Content', 301 => 'Moved Permanently', 302 => 'Found',
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
    404 => 'Not Found', 405 => 'Method Not Allowed', 406 => 'Not Acceptable',
    408 => 'Request Timeout', 410 => 'Gone', 411 => 'Length Required',
    412 => 'Precondition Failed', 413 => 'Content Too Large',
    429 => 'Too Many Requests', 431 => 'Request Header Fields Too Large',
    500 => 'Internal Server Error', 502 => 'Bad Gateway',
    503 => 'Service Unavailable', 504 => 'Gateway Timeout',
    505 => 'HTTP Version Not Supported',
);

my @DAY = qw(Sun Mon Tue Wed Thu Fri Sat);
my @MON = qw(Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec);

sub reason ($status) { return $REASON{$status} // 'Unknown' }

# RFC 9110 IMF-fixdate, independent of the locale.
sub http_date () {
    my @t = gmtime();
    return sprintf '%s, %02d %s %04d %02d:%02d:%02d GMT',
        $DAY[$t[6]], $t[3], $MON[$t[4]], $t[5] + 1900, $t[2], $t[1], $t[0];
}

# All values of a request header, by case-insensitive name; $req->{headers}
# is [[name, value], ...] in the order received.
sub header_values ($req, $name) {
    my $lc = lc $name;
    return map { $_->[1] } grep { lc($_->[0]) eq $lc } @{ $req->{headers} };
}

# Whether the connection stays open after the answer: HTTP/1.1 unless
# "close", HTTP/1.0 only with "keep-alive", given the values of the
# Connection (and, for a proxy, Proxy-Connection) headers.
sub keep_alive ($version, @values) {
    my %tokens = map { lc($_) => 1 } grep { $_ ne '' }
        map { split /[ \t]*,[ \t]*/ } @values;
    return $version eq 'HTTP/1.1' ? !$tokens{close} : !!$tokens{'keep-alive'};
}

1;
