# Lanyard: the two commands a newcomer runs are `make demo` and `make test`.
SWIFT ?= swift
.PHONY: all build deps test-deps demo test release footprint bench clean

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

build: deps
	$(SWIFT) build

# A local fleet: broker, controller and three agents with a 60 s TTL,
# renewals as they happen, one revocation, a summary; cleans up after itself.
demo: build
	@scripts/demo.sh

# Unit suites in parallel; the end-to-end suites one at a time: each runs a
# broker, a controller and agents, and in parallel on two cores the ones
# waiting on child processes starved the others' timeouts.
test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip IntegrationTests
	$(SWIFT) test --skip-build --filter IntegrationTests --no-parallel

# The agent as shipped: release build with the Swift runtime linked statically.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --product lanyard-agent
	$(SWIFT) build -c release --product lanyard-controller
	$(SWIFT) build -c release --product lanyardctl

footprint: release
	@scripts/footprint.sh

# Figures, not assertions: the agent's footprint, then issuance end to end
# with the fleet simulator next to the crypto bound of the same run,
# controller CPU per certificate, revocation time (scripts/bench.sh; sizes:
# BENCH_* variables there), and a 100 000-device register (import, list,
# filter, export, findings, report); a rotation campaign over the simulated fleet and
# a bulk revocation (scripts/bench-campaign.sh; BENCH_CAMPAIGN_DEVICES, BENCH_BULK_REVOKE);
# a CA rotation over the simulated fleet (scripts/bench-ca-rotation.sh; BENCH_CA_DEVICES);
# Markdown on stdout, JSON under bench/results/.
bench: footprint
	$(SWIFT) build -c release --product lanyard-bench
	$(SWIFT) build -c release --product lanyard-fleetsim
	@scripts/bench.sh
	$$($(SWIFT) build -c release --show-bin-path)/lanyard-bench --register 100000 --json bench/results/register.json
	@scripts/bench-campaign.sh
	@scripts/bench-ca-rotation.sh

clean:
	rm -rf .build
