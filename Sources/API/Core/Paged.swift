import Projections

/// A page of a list, the seed's PagedResult: its items, where it is, and how many there are.
struct Paged<Item: Encodable>: Encodable {
    var items: [Item]
    var page: Int
    var pageSize: Int
    var totalCount: Int
    var totalPages: Int

    enum CodingKeys: String, CodingKey {
        case items, page
        case pageSize = "page_size"
        case totalCount = "total_count"
        case totalPages = "total_pages"
    }

    init<View>(_ page: Page<View>, _ transform: (View) -> Item) {
        items = page.items.map(transform)
        self.page = page.page
        pageSize = page.pageSize
        totalCount = page.totalCount
        totalPages = page.totalCount == 0 ? 0 : (page.totalCount + page.pageSize - 1) / page.pageSize
    }
}
