//go:build unix

package main

import "syscall"

// privateUmask makes the files the process creates from now on readable by
// its user only (umask 077), as the systemd unit's UMask= does.
func privateUmask() { syscall.Umask(0o077) }
