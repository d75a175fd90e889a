package MpnsSim::Tls;

# TLS for the server's HTTPS listeners: one server context per kind of
# listener (strict or not) with a default certificate, one per SNI name and
# optionally client certificates checked against a CA; non-blocking server
# handshakes; what a finished handshake tells (SNI name, resumption, the
# verified client certificate's CN); counts of full and resumed handshakes.
#
# IO::Socket::SSL (libio-socket-ssl-perl) is loaded only once a context is
# made, so a simulator without TLS listeners does not need it.

use v5.36;

use MpnsSim::Log qw(debug);

use constant NID_COMMON_NAME => 13;

# new(cert => FILE, key => FILE, sni => { name => [CERT, KEY] },
#     client_ca => FILE or undef, id => session id context)
sub new ($class, %o) {
    return bless { %o, ctx => {}, handshakes => 0, resumed => 0 }, $class;
}

# The server context of the strict (handshake fails without a client
# certificate from client_ca) or ordinary listeners, made once; dies with
# "TLS setup failed: ..." when OpenSSL refuses the files.  Session tickets
# and the server session cache are on, so clients can resume.
sub context ($self, $strict) {
    return $self->{ctx}{$strict} //= $self->make_context($strict);
}

sub make_context ($self, $strict) {
    require IO::Socket::SSL;
    my %cert = ('' => $self->{cert});
    my %key  = ('' => $self->{key});
    for my $name (keys %{ $self->{sni} // {} }) {
        ($cert{$name}, $key{$name}) = @{ $self->{sni}{$name} };
    }
    my %a = (
        SSL_server => 1, SSL_cert_file => \%cert, SSL_key_file => \%key,
        SSL_session_id_context => $self->{id} . ($strict ? '-strict' : ''),
        SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
    );
    if (defined $self->{client_ca}) {
        $a{SSL_ca_file} = $self->{client_ca};
        $a{SSL_client_ca_file} = $self->{client_ca};
        if ($strict) {
            $a{SSL_verify_mode} = IO::Socket::SSL::SSL_VERIFY_PEER()
                | IO::Socket::SSL::SSL_VERIFY_FAIL_IF_NO_PEER_CERT();
        } else {
            # Ask for a certificate, never fail the handshake over it: the
            # server checks the result per request (check_client).
            $a{SSL_verify_mode} = IO::Socket::SSL::SSL_VERIFY_PEER();
            $a{SSL_verify_callback} = sub { 1 };
        }
    }
    # OpenSSL's defaults do the rest: a server session cache (TLS 1.2
    # session ids) and session tickets (TLS 1.2 and 1.3), whose keys live
    # in this one context shared by every connection of the listener.
    return IO::Socket::SSL::SSL_Context->new(\%a)
        || die 'TLS setup failed: ' . IO::Socket::SSL::errstr() . "\n";
}

# Turns an accepted socket into a TLS server socket whose handshake is yet
# to run; returns the connection's TLS state, or undef (the socket closed)
# when that fails.
sub start ($self, $fh, $strict) {
    my $ssl = IO::Socket::SSL->start_SSL($fh,
        SSL_server => 1, SSL_startHandshake => 0,
        SSL_reuse_ctx => $self->context($strict));
    if (!$ssl) {
        debug('TLS start failed: ' . IO::Socket::SSL::errstr());
        close $fh;
        return undef;
    }
    return { handshake => 1, want_write => 0, sni => undef,
             client_cn => undef, client_ok => 0, resumed => 0,
             check_client => defined $self->{client_ca} };
}

# Advances the server handshake of a connection's $fh with state $t:
# 'wait' (for input, or for output when $t->{want_write}), 'done' (SNI,
# resumption and the client certificate noted; the latter is kept in the
# session when it is resumed) or 'failed'.
sub handshake ($self, $fh, $t) {
    no warnings 'once';
    if (!$fh->accept_SSL) {
        my $err = $IO::Socket::SSL::SSL_ERROR;
        if (defined $err && ($err == IO::Socket::SSL::SSL_WANT_READ()
                             || $err == IO::Socket::SSL::SSL_WANT_WRITE())) {
            $t->{want_write} = $err == IO::Socket::SSL::SSL_WANT_WRITE();
            return 'wait';
        }
        debug('TLS handshake failed: ' . ($err // 'eof'));
        return 'failed';
    }
    $t->{handshake} = 0;
    my $ssl = $fh->_get_ssl_object;
    $t->{sni} = Net::SSLeay::get_servername($ssl);
    $t->{resumed} = Net::SSLeay::session_reused($ssl) ? 1 : 0;
    $self->{ $t->{resumed} ? 'resumed' : 'handshakes' }++;
    if ($t->{check_client}) {
        my $cert = Net::SSLeay::get_peer_certificate($ssl);
        if ($cert) {
            if (Net::SSLeay::get_verify_result($ssl) == 0) {
                $t->{client_ok} = 1;
                $t->{client_cn} = Net::SSLeay::X509_NAME_get_text_by_NID(
                    Net::SSLeay::X509_get_subject_name($cert),
                    NID_COMMON_NAME);
            }
            Net::SSLeay::X509_free($cert);
        }
    }
    debug(sprintf 'TLS handshake done%s, sni %s, client %s',
          $t->{resumed} ? ' (resumed)' : '', $t->{sni} // '-',
          $t->{client_cn} // '-');
    return 'done';
}

# Whether a request on a connection with TLS state $t (or none) may be
# answered: not when client certificates are checked and this one was
# missing or did not verify.
sub client_refused ($t) {
    return $t && $t->{check_client} && !$t->{client_ok};
}

# Sends close_notify once the handshake is over.
sub shutdown ($fh, $t) {
    Net::SSLeay::shutdown($fh->_get_ssl_object) unless $t->{handshake};
}

sub stats ($self) {
    return { tls_handshakes => $self->{handshakes} + 0,
             tls_resumed => $self->{resumed} + 0 };
}

sub reset ($self) {
    $self->{handshakes} = $self->{resumed} = 0;
}

1;
