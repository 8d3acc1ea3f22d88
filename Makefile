# The two commands a newcomer needs: `make run` and `make test`.
# Both honour DATABASE_URL; without it they start a private cluster in .pgdata/.
CLI := cargo run -q --locked -p fasttrack-cli --

.PHONY: run test bench soak migrate recompute token launch-body lambda-build graph graph-doc db-start db-stop db-status

run:
	@scripts/run.sh

test:
	@scripts/test.sh

# The benchmark harness: every figure beside its anchor and budget, in one
# table and in bench/results/<date>.md (docs/performance.md).
bench:
	@scripts/bench.sh

# Load and faults: 60 s runs, every acknowledged write checked.
soak:
	@scripts/soak.sh

migrate:
	@scripts/with-db.sh $(CLI) migrate

# make recompute FULL=1: a full sweep of every user
recompute:
	@scripts/with-db.sh $(CLI) recompute $(if $(FULL),--full)

# make token EMAIL=alice@demo.fasttrack.test
token:
	@test -n "$(EMAIL)" || { echo "usage: make token EMAIL=someone@example.com" >&2; exit 2; }
	@scripts/with-db.sh $(CLI) token --email "$(EMAIL)"

# A signed launch body for POST /sessions, for Ada Lovelace (local secrets).
launch-body:
	@. scripts/local-env.sh && $(CLI) launch --lms-user-id 64b000000000000000000002 --email ada@example.com --name "Ada Lovelace"

# Every function's bootstrap for provided.al2023 on arm64, in target/lambda/.
lambda-build:
	@bash -c 'source scripts/db.sh && source scripts/tools.sh && tools_up && rustup target add aarch64-unknown-linux-gnu >/dev/null && cargo lambda build --release --arm64 --workspace --exclude fasttrack-cli --exclude fasttrack-bench --exclude fasttrack-bench-hello --locked'

graph:
	@$(CLI) graph --format mermaid

graph-doc:
	@scripts/graph-doc.sh

db-start:
	@scripts/db.sh start

db-stop:
	@scripts/db.sh stop

db-status:
	@scripts/db.sh status
