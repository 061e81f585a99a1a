package db

// Test hooks: run the migrators on given migrations instead of the embedded ones.
var (
	MigratePostgresWith   = migratePostgres
	MigrateClickHouseWith = migrateClickHouse
)

// MigrateEventsByIngestTime is migration 0022, for its upgrade test.
var MigrateEventsByIngestTime = migrateEventsByIngestTime

// SplitStatements splits a ClickHouse migration file into statements.
var SplitStatements = splitStatements

// MigrateClickHouseClusterWith runs the cluster migrator on given migrations.
var MigrateClickHouseClusterWith = migrateClickHouseCluster
