import Commands

extension PostgresEventStore: HoldBackProbe {}
