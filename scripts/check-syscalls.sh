#!/usr/bin/env bash
# The OS layer is the only place that talks to the kernel about memory:
# fails (exit 1), naming file:line, when a memory system call is called in
# src/ anywhere but src/os.c (and src/preload_mmap.c, which interposes them
# for programs under `samepage run` and passes the rest on). Comments and string literals do not count;
# names that merely contain one (sp_mbind, os_mincore, ops->mmap) do not
# either. Run by `make check` before the tests.
set -eu
cd "$(dirname "$0")/.."

exec perl -e '
use strict;
use warnings;

my @banned = qw(
	mmap mmap64 mremap munmap madvise process_madvise mprotect pkey_mprotect
	mincore fallocate fallocate64 copy_file_range memfd_create ioctl syscall
	mbind set_mempolicy pread pread64 preadv preadv2 pwrite pwrite64 pwritev
	pwritev2
);
my $call = join "|", @banned;
my $bad = 0;

for my $file (@ARGV) {
	next if $file eq "src/os.c" || $file eq "src/preload_mmap.c";
	open my $fh, "<", $file or die "$file: $!\n";
	my $src = do { local $/; <$fh> };
	close $fh;
	# Comments, strings and character literals become blanks; lines stay.
	$src =~ s{(/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\x27(?:\\.|[^\x27\\\n])*\x27)}
		 { (my $m = $1) =~ s/[^\n]/ /g; $m }gse;
	my $line = 0;
	for my $text (split /\n/, $src, -1) {
		$line++;
		while ($text =~ /(?<![\w.>])($call)\s*\(/g) {
			print "$file:$line: $1() called outside src/os.c: use os.h\n";
			$bad = 1;
		}
	}
}
exit $bad;
' src/*.c src/*.h
