package db

// Test hooks: run the migrators on given migrations instead of the embedded ones.
var (
	MigratePostgresWith   = migratePostgres
	MigrateClickHouseWith = migrateClickHouse
)
