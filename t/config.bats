#!/usr/bin/env bats
# (being written)
load helpers
