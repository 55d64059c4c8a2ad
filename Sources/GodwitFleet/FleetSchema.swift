import GodwitPostgres

extension SchemaPart {
    /// The fleets' part (owner `fleet`): `fleet_runs` and `fleet_targets`, the record of every
    /// fleet run and its targets on the control database. It needs no other part.
    /// `Resources/fleet_schema.sql`, embedded at build time.
    public static let fleet = SchemaPart(
        owner: "fleet", install: SchemaPart.template(PackageResources.fleet_schema_sql))
}
