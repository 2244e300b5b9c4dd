"""The metadata store on SQLAlchemy: schema, migrations, engines, queries and the store itself."""
