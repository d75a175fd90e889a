package MpnsSim::Log;

# Diagnostics of the simulator on stderr: "NAME: message" lines, none with
# --quiet, every request and answer too with --verbose.

use v5.36;

use Exporter qw(import);

our @EXPORT_OK = qw(note debug);

my %conf = (name => 'mpns-simulator', quiet => 0, verbose => 0);

# setup(name => ..., quiet => 0|1, verbose => 0|1)
sub setup (%o) {
    %conf = (%conf, %o);
}

sub note ($msg) {
    print STDERR "$conf{name}: $msg\n" unless $conf{quiet};
}

sub debug ($msg) {
    note($msg) if $conf{verbose};
}

1;
