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

// ClickHouseMigrations returns the embedded ClickHouse migrations, the Go
// ones included, in order.
func ClickHouseMigrations() ([]Migration, error) {
	all, err := loadMigrations(migrationFiles, "migrations/clickhouse")
	if err != nil {
		return nil, err
	}
	return sortMigrations(append(all, clickHouseGoMigrations...))
}
