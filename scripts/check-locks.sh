#!/usr/bin/env bash
# Every lock of samepage is ranked in src/lock.h and taken through its
# checked wrappers: fails (exit 1), naming file:line, when a file in src/
# other than lock.h/lock.c declares a raw pthread mutex, rwlock or spinlock
# or calls pthread's lock functions itself. Comments and strings do not
# count. Run by `make check` before the tests.
set -eu
cd "$(dirname "$0")/.."

exec perl -e '
use strict;
use warnings;

my $bad = 0;

for my $file (@ARGV) {
	next if $file =~ m{^src/lock\.[ch]$};
	# The preload library'"'"'s locks are the host program'"'"'s (see lock.h).
	next if $file =~ m{^src/preload[^/]*\.[ch]$};
	open my $fh, "<", $file or die "$file: $!\n";
	my $src = do { local $/; <$fh> };
	close $fh;
	$src =~ s{(/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\x27(?:\\.|[^\x27\\\n])*\x27)}
		 { (my $m = $1) =~ s/[^\n]/ /g; $m }gse;
	my $line = 0;
	for my $text (split /\n/, $src, -1) {
		$line++;
		while ($text =~ /\b(pthread_(?:mutex|rwlock|spin)_(?:t|lock|trylock|timedlock|rdlock|wrlock|tryrdlock|trywrlock|unlock|init)|pthread_cond_(?:wait|timedwait)|PTHREAD_MUTEX_INITIALIZER)\b/g) {
			print "$file:$line: $1 outside src/lock.h: use its ranked wrappers\n";
			$bad = 1;
		}
	}
}
exit $bad;
' src/*.c src/*.h
