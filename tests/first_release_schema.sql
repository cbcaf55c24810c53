-- The run database as the first release (commit 33872e6) created it with SQLModel's create_all, before
-- migrations existed. Frozen: tests upgrade a database made from it.
CREATE TABLE runs (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	name VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	config_json TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	started_at FLOAT, 
	finished_at FLOAT, 
	attempt INTEGER NOT NULL, 
	worker_id VARCHAR, 
	pid INTEGER, 
	lease_expires_at FLOAT, 
	heartbeat_at FLOAT, 
	cancel_requested BOOLEAN NOT NULL, 
	resume BOOLEAN NOT NULL, 
	output_dir VARCHAR NOT NULL, 
	error TEXT, 
	dataset_fingerprint VARCHAR, 
	versions_json TEXT, 
	device VARCHAR, 
	total_steps INTEGER, 
	last_step INTEGER NOT NULL, 
	last_loss FLOAT
);
CREATE INDEX ix_runs_status_id ON runs (status, id);
CREATE TABLE metrics (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	epoch FLOAT, 
	loss FLOAT, 
	learning_rate FLOAT, 
	grad_norm FLOAT, 
	tokens_per_s FLOAT, 
	seconds_per_step FLOAT, 
	gpu_mem_gb FLOAT, 
	eval_loss FLOAT, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE INDEX ix_metrics_run_step ON metrics (run_id, step);
CREATE TABLE run_events (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	ts FLOAT NOT NULL, 
	level VARCHAR NOT NULL, 
	message TEXT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE INDEX ix_run_events_run ON run_events (run_id, id);
CREATE TABLE comparisons (
	id INTEGER NOT NULL, 
	run_id INTEGER, 
	created_at FLOAT NOT NULL, 
	question TEXT NOT NULL, 
	settings_json TEXT NOT NULL, 
	base_reasoning TEXT, 
	base_answer TEXT, 
	base_seconds FLOAT, 
	base_tokens INTEGER, 
	tuned_reasoning TEXT, 
	tuned_answer TEXT, 
	tuned_seconds FLOAT, 
	tuned_tokens INTEGER, 
	stopped BOOLEAN NOT NULL, 
	preferred VARCHAR, 
	note TEXT, 
	base_model VARCHAR, 
	device VARCHAR, 
	prompt TEXT, 
	base_state VARCHAR, 
	tuned_state VARCHAR, 
	base_finish VARCHAR, 
	tuned_finish VARCHAR, 
	base_first_token_s FLOAT, 
	tuned_first_token_s FLOAT, 
	reference_reasoning TEXT, 
	reference_answer TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
CREATE TABLE publishes (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	created_at FLOAT NOT NULL, 
	kind VARCHAR NOT NULL, 
	target VARCHAR NOT NULL, 
	status VARCHAR NOT NULL, 
	url VARCHAR, 
	commit_id VARCHAR, 
	account VARCHAR, 
	error TEXT, 
	destination VARCHAR NOT NULL, 
	private BOOLEAN, 
	finished_at FLOAT, 
	files_json TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
